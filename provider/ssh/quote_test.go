package ssh_test

import (
	"os/exec"
	"testing"

	berthssh "github.com/berth-io/berth/provider/ssh"
)

func TestQuotePassesAnyStringThroughTheShellUnchanged(t *testing.T) {
	for _, s := range []string{
		"", "plain", "with space", "it's", "''", `"double"`, "$HOME", "`id`", "$(id)", "a;b|c&d", "new\nline", "back\\slash", "*?[]",
	} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+berthssh.Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printf %%s %s = %q, %v; want %q", berthssh.Quote(s), out, err, s)
		}
	}
}
