package ssh_test

import (
	"context"
	"encoding/pem"
	"testing"
	"time"

	berthssh "github.com/berth-io/berth/provider/ssh"
	"github.com/berth-io/berth/provider/ssh/sshtest"
)

// testContext bounds a test so a hang fails it instead of the whole run.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newHost starts an in-process SSH server accepting a fresh client key and
// returns it with a HostConfig that pins its host key.
func newHost(t *testing.T, name string, opts sshtest.Options) (*sshtest.Server, berthssh.HostConfig) {
	t.Helper()
	signer, pemKey := sshtest.NewKey(t)
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, signer.PublicKey())
	srv := sshtest.New(t, opts)
	return srv, berthssh.HostConfig{
		Name:           name,
		Address:        srv.Host(),
		Port:           srv.Port(),
		User:           "berth",
		PrivateKey:     pemKey,
		HostKey:        berthssh.FormatHostKey(srv.HostKey()),
		ConnectTimeout: 10 * time.Second,
	}
}

// dial connects with a store-less Dialer and closes the client at the end.
func dial(t *testing.T, cfg berthssh.HostConfig) *berthssh.Client {
	t.Helper()
	var d berthssh.Dialer
	c, err := d.Dial(testContext(t), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
