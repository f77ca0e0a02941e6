package spool

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// BenchmarkCommitSegment commits 80 KB segments (the size of a few seconds of sealed G.711),
// fsyncs included: the file, its directory and the index. The baseline is atomicfile.Write
// of the same bytes to new files in the same run: file and directory fsync, no index.
func BenchmarkCommitSegment(b *testing.B) {
	data := sealedData("bench", 80*1024)
	b.Run("spool", func(b *testing.B) {
		s, _ := openSpool(b, b.TempDir())
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			call := fmt.Sprintf("20260101T090000Z-%012d", i/1000)
			if _, err := s.CommitSegment(call, i%1000, data); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("atomicfile-baseline", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			if err := atomicfile.Write(filepath.Join(dir, fmt.Sprintf("%06d.age", i)), data, 0o600); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkCommitManifest replaces a 1 KB manifest, as package recording does after every
// segment: the replacement is noted in the index before the rename and recorded after it.
func BenchmarkCommitManifest(b *testing.B) {
	data := sealedData("manifest", 1024)
	b.Run("spool", func(b *testing.B) {
		s, _ := openSpool(b, b.TempDir())
		for b.Loop() {
			if _, err := s.CommitManifest(call1, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("atomicfile-baseline", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), call1+".age")
		for b.Loop() {
			if err := atomicfile.Write(path, data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	})
}
