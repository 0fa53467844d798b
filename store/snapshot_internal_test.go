package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hashicorp/raft"
)

// writeTableWithEncoder is how writeTable wrote records before it wrote
// their envelope itself: the reference its bytes must match.
func writeTableWithEncoder(t *testing.T, enc *json.Encoder, s *Store, table string) {
	t.Helper()
	it, err := s.View().txn.Get(table, indexID)
	if err != nil {
		t.Fatal(err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(snapshotRecord{Table: table, Object: raw}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteTableMatchesEncoder(t *testing.T) {
	s := New(nil)
	cmds := [][]byte{}
	for _, task := range []Task{
		{ID: "a<b>&c", App: "shop", Service: "web", Slot: 1, Message: "waiting for \"db\" <é>\u2028", IPs: []string{"10.0.0.1"}},
		{ID: "plain", App: "shop", Service: "db", Slot: 2},
	} {
		cmd, err := Encode(CmdPutTask, task)
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	data, err := EncodeBatch(cmds...)
	if err != nil {
		t.Fatal(err)
	}
	if res := s.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}).(*ApplyResult); res.Err != nil {
		t.Fatal(res.Err)
	}
	var got, want bytes.Buffer
	bw := bufio.NewWriter(&got)
	n, err := writeTable(bw, s.View().txn, tableTasks)
	if err != nil || n != 2 {
		t.Fatalf("wrote %d tasks: %v", n, err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	writeTableWithEncoder(t, json.NewEncoder(&want), s, tableTasks)
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("writeTable wrote\n%s\nthe encoder writes\n%s", got.Bytes(), want.Bytes())
	}
}
