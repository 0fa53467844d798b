package store_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// The type bytes are in every raft log ever written: they must not move.
func TestCommandTypeValuesPinned(t *testing.T) {
	pinned := map[store.CommandType]uint8{
		store.CmdInitCluster: 1, store.CmdRegisterServer: 2, store.CmdRemoveServer: 3,
		store.CmdRegisterHost: 4, store.CmdHostHeartbeat: 5, store.CmdSetHostState: 6,
		store.CmdSetVar: 7, store.CmdDeleteVar: 8, store.CmdPutApp: 9, store.CmdDeleteApp: 10,
		store.CmdPutService: 11, store.CmdDeleteService: 12, store.CmdPutTask: 13,
		store.CmdDeleteTask: 14, store.CmdPutVolume: 15, store.CmdDeleteVolume: 16,
		store.CmdPutNetwork: 17, store.CmdDeleteNetwork: 18, store.CmdPutLease: 19,
		store.CmdDeleteLease: 20, store.CmdPutMove: 21, store.CmdDeleteMove: 22,
		store.CmdBatch: 23, store.CmdDeleteHost: 24,
	}
	for typ, want := range pinned {
		if uint8(typ) != want {
			t.Errorf("%s = %d, want %d", typ, uint8(typ), want)
		}
	}
	if got := store.CommandType(99).String(); got != "unknown(99)" {
		t.Errorf("unknown type string %q", got)
	}
}

func TestEncodeDecode(t *testing.T) {
	data := encode(t, store.CmdRegisterHost, mock.Host())
	cmd, err := store.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Type != store.CmdRegisterHost || data[0] != byte(store.CmdRegisterHost) {
		t.Fatalf("decoded type %s, first byte %d", cmd.Type, data[0])
	}
	var h store.Host
	if err := json.Unmarshal(cmd.Payload, &h); err != nil || h.Name != "host1" || h.MemoryBytes != 8<<30 {
		t.Fatalf("payload %s: %+v %v", cmd.Payload, h, err)
	}
	if _, err := store.Decode(nil); err == nil {
		t.Fatal("decoded an empty entry")
	}
	if _, err := store.Encode(store.CmdSetVar, func() {}); err == nil {
		t.Fatal("encoded an unencodable payload")
	}
}

// Two hosts racing to attach a volume both read its ModifyIndex; the Check
// lets exactly one batch through.
func TestCheckVolumesRacingAttach(t *testing.T) {
	s := store.New(nil)
	idx := mustApply(t, s, store.CmdPutVolume, store.Volume{Name: "data", Backend: store.VolumeBlock, Generation: 1})
	attach := func(host string) []byte {
		data, err := store.EncodeBatch(
			encode(t, store.CmdCheck, store.Check{Volumes: map[string]uint64{"data": idx}}),
			encode(t, store.CmdPutVolume, store.Volume{Name: "data", Backend: store.VolumeBlock, OwnerHost: host, Generation: 2}),
		)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if res := applyData(t, s, attach("host1")); res.Err != nil {
		t.Fatalf("first attach refused: %v", res.Err)
	}
	if res := applyData(t, s, attach("host2")); !errors.Is(res.Err, store.ErrConflict) {
		t.Fatalf("second attach: %v, want ErrConflict", res.Err)
	}
	if v, _ := s.View().Volume("data"); v.OwnerHost != "host1" || v.Generation != 2 {
		t.Fatalf("volume %+v, want owner host1 generation 2", v)
	}
	create, err := store.EncodeBatch(encode(t, store.CmdCheck, store.Check{Volumes: map[string]uint64{"data": 0}}),
		encode(t, store.CmdPutVolume, store.Volume{Name: "data", Backend: store.VolumeCopy}))
	if err != nil {
		t.Fatal(err)
	}
	if res := applyData(t, s, create); !errors.Is(res.Err, store.ErrConflict) {
		t.Fatalf("create over an existing volume: %v, want ErrConflict", res.Err)
	}
}
