package etcd

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestChecksumWriterVerifiesTheTrailingHashAcrossWriteBoundaries(t *testing.T) {
	body := bytes.Repeat([]byte("berth etcd snapshot "), 100)
	sum := sha256.Sum256(body)
	valid := append(append([]byte(nil), body...), sum[:]...)
	flip := func(i int) []byte {
		b := append([]byte(nil), valid...)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name    string
		stream  []byte
		wantErr error
	}{
		{"intact stream passes", valid, nil},
		{"flipped body byte is corrupt", flip(10), ErrSnapshotCorrupt},
		{"flipped hash byte is corrupt", flip(len(valid) - 1), ErrSnapshotCorrupt},
		{"missing hash is corrupt", body, ErrSnapshotCorrupt},
		{"stream shorter than a hash is corrupt", valid[:10], ErrSnapshotCorrupt},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 32, 33, 4096} {
			var out bytes.Buffer
			w := &checksumWriter{w: &out, h: sha256.New()}
			for rest := tt.stream; len(rest) > 0; {
				n := min(chunk, len(rest))
				if _, err := w.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			err := w.verify()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("%s in chunks of %d: verify = %v, want %v", tt.name, chunk, err, tt.wantErr)
			}
			if !bytes.Equal(out.Bytes(), tt.stream) {
				t.Errorf("%s in chunks of %d: passed through %d bytes, want the %d written", tt.name, chunk, out.Len(), len(tt.stream))
			}
		}
	}
}
