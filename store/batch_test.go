package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// testBatch returns the payload EncodeBatch writes for n task puts.
func testBatch(t testing.TB, n int) []byte {
	t.Helper()
	cmds := make([][]byte, n)
	for i := range cmds {
		cmd, err := Encode(CmdPutTask, Task{ID: fmt.Sprintf("shop.web.%d.0a1b2c3d", i+1), App: "shop", Service: "web", Slot: i + 1})
		if err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	data, err := EncodeBatch(cmds...)
	if err != nil {
		t.Fatal(err)
	}
	return data[1:] // the payload, without the type byte
}

func TestDecodeBatchAgreesWithJSON(t *testing.T) {
	payloads := map[string]string{
		"empty":             `{"commands":[]}`,
		"null":              `{"commands":null}`,
		"spaces":            `{ "commands" : [ "AQI=" , "Aw==" ] }`,
		"escaped slash":     `{"commands":["a\/8="]}`,
		"empty command":     `{"commands":["","AQI="]}`,
		"other field":       `{"commands":["AQI="],"x":1}`,
		"capitalized":       `{"Commands":["AQI="]}`,
		"bad base64":        `{"commands":["A!I="]}`,
		"raw newline":       "{\"commands\":[\"AQ\nI=\"]}",
		"raw newline, full": "{\"commands\":[\"AQI=\nAw==\"]}",
		"raw return":        "{\"commands\":[\"AQI=\r\"]}",
		"escaped newline":   `{"commands":["AQI=\nAw=="]}`,
		"trailing comma":    `{"commands":["AQI=",]}`,
		"missing comma":     `{"commands":["AQI=""Aw=="]}`,
		"unterminated":      `{"commands":["AQI=]}`,
		"number":            `{"commands":[1]}`,
		"short":             `{"commands":]}`,
		"three from encode": string(testBatch(t, 3)),
	}
	for name, p := range payloads {
		got, err := decodeBatch([]byte(p))
		var want Batch
		wantErr := json.Unmarshal([]byte(p), &want)
		switch {
		case (err != nil) != (wantErr != nil):
			t.Errorf("%s: decodeBatch error %v, encoding/json error %v", name, err, wantErr)
		case err == nil && len(got.Commands)+len(want.Commands) > 0 && !reflect.DeepEqual(got.Commands, want.Commands):
			t.Errorf("%s: decodeBatch %q, encoding/json %q", name, got.Commands, want.Commands)
		}
	}
}

func TestDecodeBatchFastPathTakesEncodeBatch(t *testing.T) {
	for _, n := range []int{0, 1, 1000} {
		b, ok := decodeBatchFast(testBatch(t, n))
		if !ok || len(b.Commands) != n {
			t.Fatalf("%d commands: fast path ok=%v with %d commands", n, ok, len(b.Commands))
		}
	}
	// Commands share a buffer: appending to one must not touch the next.
	b, _ := decodeBatchFast(testBatch(t, 2))
	second := string(b.Commands[1])
	_ = append(b.Commands[0], "overwrite"...)
	if string(b.Commands[1]) != second {
		t.Fatal("appending to command 0 changed command 1")
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	p := testBatch(b, 1000)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for range b.N {
			if _, err := decodeBatch(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for range b.N {
			if _, err := decodePayload[Batch](p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
