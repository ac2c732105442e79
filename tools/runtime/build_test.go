package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var testVersions = map[string]string{
	"github.com/containerd/containerd/v2":    "v2.4.2",
	"github.com/opencontainers/runc":         "v1.5.2",
	"github.com/containernetworking/plugins": "v1.10.0",
}

func TestCacheKeyChangesWithEverythingThatDecidesTheBytes(t *testing.T) {
	comps := components(testVersions)
	base := cacheKey(comps, "go1.26.8", "amd64", []byte("mod"), []byte("sum"))
	if again := cacheKey(components(testVersions), "go1.26.8", "amd64", []byte("mod"), []byte("sum")); again != base {
		t.Fatalf("same recipe gave keys %s and %s", base, again)
	}
	otherTags := components(testVersions)
	otherTags[0].tags = []string{"no_btrfs"}
	otherVersion := map[string]string{}
	for k, v := range testVersions {
		otherVersion[k] = v
	}
	otherVersion["github.com/containerd/containerd/v2"] = "v2.4.3"
	tests := []struct {
		name string
		key  string
	}{
		{"another Go toolchain", cacheKey(comps, "go1.26.9", "amd64", []byte("mod"), []byte("sum"))},
		{"another architecture", cacheKey(comps, "go1.26.8", "arm64", []byte("mod"), []byte("sum"))},
		{"another go.mod", cacheKey(comps, "go1.26.8", "amd64", []byte("mod2"), []byte("sum"))},
		{"another go.sum", cacheKey(comps, "go1.26.8", "amd64", []byte("mod"), []byte("sum2"))},
		{"other build tags", cacheKey(otherTags, "go1.26.8", "amd64", []byte("mod"), []byte("sum"))},
		{"another version stamped in", cacheKey(components(otherVersion), "go1.26.8", "amd64", []byte("mod"), []byte("sum"))},
	}
	for _, tt := range tests {
		if tt.key == base {
			t.Errorf("%s: key stayed %s", tt.name, base)
		}
	}
	if !strings.HasSuffix(base, "-amd64") {
		t.Errorf("key %s does not name its architecture", base)
	}
}

func TestBuildArgsAreReproducibleAndStatic(t *testing.T) {
	for _, c := range components(testVersions) {
		args := buildArgs(c, "/out/", []string{c.bins[0].pkg})
		joined := strings.Join(args, " ")
		for _, want := range []string{"-trimpath", "-buildid="} {
			if !strings.Contains(joined, want) {
				t.Errorf("%s: %q lacks %s", c.name, joined, want)
			}
		}
		if c.cgo && !strings.Contains(joined, "-extldflags -static") {
			t.Errorf("%s links with cgo but not statically: %q", c.name, joined)
		}
		i := slices.Index(args, "-ldflags")
		if i < 0 || strings.Count(args[i+1], "-X") != strings.Count(strings.Join(c.ldflags, " "), "-X") {
			t.Errorf("%s: ldflags %q lose version stamps", c.name, args)
		}
	}
	runc := components(testVersions)[1]
	if !slices.Equal(runc.tags, []string{"seccomp", "netgo", "osusergo"}) {
		t.Errorf("runc tags %v", runc.tags)
	}
}

func TestRecipeBuildsEveryBinaryANodeImageNeeds(t *testing.T) {
	var got []string
	for _, c := range components(testVersions) {
		for _, b := range c.bins {
			got = append(got, b.dir+"/"+filepath.Base(b.pkg))
		}
	}
	slices.Sort(got)
	want := []string{
		"bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr", "bin/runc",
		"cni/bin/bridge", "cni/bin/host-local", "cni/bin/loopback", "cni/bin/portmap",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("recipe builds %v, want %v", got, want)
	}
}

func TestCheckStaticRefusesAProgramInterpreter(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"static executable", fakeELF(""), nil},
		{"executable needing ld.so", fakeELF("/lib64/ld-linux-x86-64.so.2"), ErrDynamic},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
		if err := os.WriteFile(p, tt.data, 0o755); err != nil {
			t.Fatal(err)
		}
		err := checkStatic(p)
		if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), p)) {
			t.Errorf("%s: got %v, want %v naming the file", tt.name, err, tt.wantErr)
		}
	}
}

func TestQuoteLdflagsKeepsValuesWithSpacesTogether(t *testing.T) {
	got := quoteLdflags([]string{"-X", "main.v=a b", "-s"})
	if got != "-X 'main.v=a b' -s" {
		t.Fatalf("got %q", got)
	}
}

// fakeELF returns a minimal amd64 ELF executable, with a PT_INTERP segment
// when interp is set.
func fakeELF(interp string) []byte {
	le := binary.LittleEndian
	phnum := 1
	if interp != "" {
		phnum = 2
	}
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, v := range []any{uint16(elf.ET_EXEC), uint16(elf.EM_X86_64), uint32(1), uint64(0x400000), uint64(64), uint64(0), uint32(0),
		uint16(64), uint16(56), uint16(phnum), uint16(64), uint16(0), uint16(0)} {
		binary.Write(&b, le, v)
	}
	dataOff := uint64(64 + 56*phnum)
	in := []byte(interp + "\x00")
	prog := func(typ elf.ProgType, off, size uint64) {
		for _, v := range []any{uint32(typ), uint32(elf.PF_R), off, 0x400000 + off, 0x400000 + off, size, size, uint64(0x1000)} {
			binary.Write(&b, le, v)
		}
	}
	if interp != "" {
		prog(elf.PT_INTERP, dataOff, uint64(len(in)))
		prog(elf.PT_LOAD, 0, dataOff+uint64(len(in)))
		b.Write(in)
	} else {
		prog(elf.PT_LOAD, 0, dataOff)
	}
	return b.Bytes()
}
