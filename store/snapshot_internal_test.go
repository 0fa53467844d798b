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
func writeTasksWithEncoder(t *testing.T, enc *json.Encoder, s *Store) {
	t.Helper()
	for obj := range s.View().txn.tasks.all() {
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(snapshotRecord{Table: tableTasks, Object: raw}); err != nil {
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
	sn := &snapshot{tasks: s.View().txn.tasks}
	objects, err := sn.objects(nil, tableTasks)
	if err != nil {
		t.Fatal(err)
	}
	n, err := writeTable(bw, tableTasks, objects)
	if err != nil || n != 2 {
		t.Fatalf("wrote %d tasks: %v", n, err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	writeTasksWithEncoder(t, json.NewEncoder(&want), s)
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("writeTable wrote\n%s\nthe encoder writes\n%s", got.Bytes(), want.Bytes())
	}
}
