package provisioning_test

import (
	"bytes"
	"hash/crc32"
	"testing"

	"github.com/wallphone/wallphone/provisioning"
)

// BenchmarkFrame is a full frame's encode and decode (COBS, header, CRC-32C) of an enrolment
// chunk against the bare CRC-32C pass over the same bytes that any checksummed framing pays.
func BenchmarkFrame(b *testing.B) {
	payload := bytes.Repeat([]byte(`{"name":"sip.json","data":"QUFBQUFB"}`), provisioning.MaxPayload/40)
	b.Run("wallphone", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		buf := make([]byte, 0, 2*provisioning.MaxPayload)
		for b.Loop() {
			w, err := provisioning.AppendFrame(buf[:0], provisioning.Frame{Type: provisioning.TypePut, Seq: 1, Payload: payload})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := provisioning.DecodeFrame(w[1 : len(w)-1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		table := crc32.MakeTable(crc32.Castagnoli)
		var sum uint32
		for b.Loop() {
			sum += crc32.Checksum(payload, table)
			sum += crc32.Checksum(payload, table)
		}
		_ = sum
	})
}
