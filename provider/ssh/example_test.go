package ssh_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	berthssh "github.com/berth-io/berth/provider/ssh"
)

// Install a file on many hosts: refuse hosts that lack what berth needs,
// upload with verification, then run a command, at most four hosts at a
// time. Host keys unknown so far are recorded in a known_hosts file and
// enforced from then on.
func Example() {
	ctx := context.Background()
	key, err := os.ReadFile(filepath.Join(os.Getenv("HOME"), ".ssh", "id_ed25519"))
	if err != nil {
		fmt.Println(err)
		return
	}
	hosts := []berthssh.HostConfig{
		{Name: "node-1", Address: "198.18.0.11", PrivateKey: key},
		{Name: "node-2", Address: "198.18.0.12", PrivateKey: key},
	}
	store := berthssh.NewKnownHostsFile(filepath.Join(os.Getenv("HOME"), ".berth", "known_hosts"))
	pool := berthssh.NewPool(&berthssh.Dialer{HostKeys: store})
	defer pool.Close()

	image, err := os.Open("node-image.tar")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer image.Close()
	const digest = "0000000000000000000000000000000000000000000000000000000000000000"

	err = pool.ForEach(ctx, hosts, 4, func(ctx context.Context, c *berthssh.Client) error {
		report, err := berthssh.Preflight(ctx, c)
		if err != nil {
			return err
		}
		if problems := report.Problems(); len(problems) > 0 {
			return fmt.Errorf("host %q is not ready: %v", c.Host(), problems)
		}
		// Each host reads the image through its own section of the file.
		st, err := image.Stat()
		if err != nil {
			return err
		}
		src := io.NewSectionReader(image, 0, st.Size())
		if err := c.Upload(ctx, src, st.Size(), "/opt/berth/images/"+digest+".tar", 0o600, digest); err != nil {
			return err
		}
		_, _, _, err = c.Run(ctx, "tar -C /opt/berth/images -xf /opt/berth/images/"+digest+".tar", berthssh.RunOptions{Timeout: 5 * time.Minute})
		return err
	})
	if err != nil {
		fmt.Println(err)
	}
}
