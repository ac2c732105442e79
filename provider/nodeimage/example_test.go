package nodeimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// The life of a node image: build it once, check its digest where it
// landed, unpack it under its digest, and re-check the directory later.
func Example() {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "nodeimage-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(work)
	spec, err := exampleInputs(work)
	if err != nil {
		fmt.Println(err)
		return
	}

	bundle := filepath.Join(work, "image.tar.gz")
	_, digest, err := BuildFile(ctx, spec, bundle)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := Verify(ctx, bundle, digest); err != nil {
		fmt.Println(err)
		return
	}
	f, err := os.Open(bundle)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	dest := filepath.Join(work, digest.Hex())
	if _, err := UnpackVerified(ctx, f, dest, digest); err != nil {
		fmt.Println(err)
		return
	}
	m, err := VerifyDir(ctx, dest)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Architecture, m.BerthVersion, "containerd", m.Components["containerd"])
	for _, file := range m.Files {
		fmt.Println(file.Mode, file.Path)
	}
	// Output:
	// amd64 v0.1.0 containerd v2.4.2
	// 0755 bin/berth
	// 0755 bin/containerd
	// 0755 bin/containerd-shim-runc-v2
	// 0755 bin/ctr
	// 0755 bin/runc
	// 0755 cni/bin/bridge
	// 0755 cni/bin/host-local
	// 0755 cni/bin/loopback
	// 0755 cni/bin/portmap
}

// exampleInputs lays out fake static executables and a versions.json the
// way scripts/build-runtime.sh does.
func exampleInputs(dir string) (BuildSpec, error) {
	files := map[string][]byte{
		"berth":                   staticELF("berth"),
		"runtime/" + VersionsFile: []byte(`{"containerd":"v2.4.2","runc":"v1.5.2","cni-plugins":"v1.10.0"}`),
	}
	for _, b := range RuntimeBinaries {
		files["runtime/bin/"+b] = staticELF(b)
	}
	for _, p := range RequiredCNIPlugins {
		files["runtime/cni/bin/"+p] = staticELF(p)
	}
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return BuildSpec{}, err
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			return BuildSpec{}, err
		}
	}
	return BuildSpec{
		BerthBinary:  filepath.Join(dir, "berth"),
		BerthVersion: "v0.1.0",
		RuntimeDir:   filepath.Join(dir, "runtime"),
	}, nil
}
