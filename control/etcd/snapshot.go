package etcd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
)

// ErrSnapshotCorrupt: the snapshot stream's trailing SHA-256 does not match
// its contents, so what was written must not be used.
var ErrSnapshotCorrupt = errors.New("etcd snapshot checksum mismatch")

// Snapshot streams a point-in-time copy of one member's database to w (use a
// client with one endpoint to choose the member). etcd appends a SHA-256 of
// the database to the stream; Snapshot writes it too (Restore checks it) and
// verifies it as it streams, returning an error wrapping ErrSnapshotCorrupt
// on a mismatch. On any error, discard what was written.
func Snapshot(ctx context.Context, cli *clientv3.Client, w io.Writer) error {
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	v := &checksumWriter{w: w, h: sha256.New()}
	if _, err := io.Copy(v, rc); err != nil {
		return fmt.Errorf("etcd snapshot: stream: %w", err)
	}
	if err := v.verify(); err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	return nil
}

// checksumWriter passes everything through to w while hashing all but the
// last sha256.Size bytes, which it keeps to compare with the hash.
type checksumWriter struct {
	w    io.Writer
	h    hash.Hash
	tail []byte
	n    int64
}

func (c *checksumWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	p = p[:n]
	c.n += int64(n)
	buf := append(c.tail, p...)
	if over := len(buf) - sha256.Size; over > 0 {
		_, _ = c.h.Write(buf[:over])
		buf = buf[over:]
	}
	c.tail = append(c.tail[:0:0], buf...)
	return n, err
}

func (c *checksumWriter) verify() error {
	if len(c.tail) < sha256.Size {
		return fmt.Errorf("%w: stream of %d bytes is too short", ErrSnapshotCorrupt, c.n)
	}
	if !bytes.Equal(c.h.Sum(nil), c.tail) {
		return fmt.Errorf("%w: %d bytes", ErrSnapshotCorrupt, c.n)
	}
	return nil
}

// RestoreConfig describes the member a snapshot is restored into: the
// first member of a fresh cluster, started afterwards with the same Name,
// DataDir, peer URL and InitialCluster and ClusterState NewCluster.
type RestoreConfig struct {
	// Name is the member's name.
	Name string
	// DataDir must not exist or be empty.
	DataDir string
	// PeerURL is the member's advertised peer URL.
	PeerURL string
	// InitialCluster defaults to Name=PeerURL.
	InitialCluster string
	// ClusterToken defaults to DefaultClusterToken; pass the berth cluster
	// ID, as for Config.
	ClusterToken string
	// LogOutput receives etcd's JSON log; nil discards it.
	LogOutput io.Writer
}

// Restore writes a data directory from a snapshot file made by Snapshot,
// checking its SHA-256, so a fresh control plane started on it has every key
// at the revision it had. Restore works on local files only and cannot be
// interrupted; ctx is checked before it starts.
func Restore(ctx context.Context, snapshotPath string, cfg RestoreConfig) error {
	if cfg.Name == "" || cfg.DataDir == "" || cfg.PeerURL == "" {
		return errors.New("restore etcd snapshot: need name, data dir and peer url")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restore etcd snapshot %s: %w", snapshotPath, err)
	}
	if _, err := os.Stat(snapshotPath); err != nil {
		return fmt.Errorf("restore etcd snapshot: %w", err)
	}
	ic := cfg.InitialCluster
	if ic == "" {
		ic = cfg.Name + "=" + cfg.PeerURL
	}
	token := cfg.ClusterToken
	if token == "" {
		token = DefaultClusterToken
	}
	err := snapshot.NewV3(newLogger(cfg.LogOutput)).Restore(snapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                cfg.Name,
		OutputDataDir:       cfg.DataDir,
		PeerURLs:            []string{cfg.PeerURL},
		InitialCluster:      ic,
		InitialClusterToken: token,
	})
	if err != nil {
		return fmt.Errorf("restore etcd snapshot %s into %s: %w", snapshotPath, cfg.DataDir, err)
	}
	return nil
}
