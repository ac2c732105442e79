package framework_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/berth-io/berth/provider/nodeimage"
)

// staticELF returns a minimal static x86-64 executable (one PT_LOAD, no
// interpreter) carrying payload, enough for nodeimage.Build.
func staticELF(payload string) []byte {
	const ehsize, phentsize = 64, 56
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), 0})
	b.Write(make([]byte, 8))
	for _, v := range []any{uint16(elf.ET_EXEC), uint16(elf.EM_X86_64), uint32(elf.EV_CURRENT), uint64(0x400000), uint64(ehsize), uint64(0),
		uint32(0), uint16(ehsize), uint16(phentsize), uint16(1), uint16(64), uint16(0), uint16(0)} {
		binary.Write(&b, le, v)
	}
	size := uint64(ehsize + phentsize + len(payload))
	for _, v := range []any{uint32(elf.PT_LOAD), uint32(elf.PF_R | elf.PF_X), uint64(0), uint64(0x400000), uint64(0x400000), size, size, uint64(0x1000)} {
		binary.Write(&b, le, v)
	}
	b.WriteString(payload)
	return b.Bytes()
}

// buildNodeImage writes a node image bundle whose berth binary carries
// version to path and returns its digest.
func buildNodeImage(t *testing.T, path, version string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel string, data []byte) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := nodeimage.BuildSpec{BerthBinary: write("berth", staticELF("berth "+version)), BerthVersion: version, RuntimeDir: filepath.Join(dir, "runtime")}
	for _, b := range nodeimage.RuntimeBinaries {
		write(filepath.Join("runtime", "bin", b), staticELF(b))
	}
	for _, p := range nodeimage.RequiredCNIPlugins {
		write(filepath.Join("runtime", "cni", "bin", p), staticELF(p))
	}
	write(filepath.Join("runtime", nodeimage.VersionsFile), []byte(`{"containerd":"v2.4.2","runc":"v1.5.2","cni-plugins":"v1.10.0","go":"go1.26.8"}`))
	_, d, err := nodeimage.BuildFile(context.Background(), spec, path)
	if err != nil {
		t.Fatalf("build node image: %v", err)
	}
	return d.String()
}

func nodeImageConfig(path string) string {
	return fmt.Sprintf(`
resource "berth_node_image" "this" {
  path = %[1]q
}
`, path)
}

func TestAccNodeImageDigestIsTheBundlesAndARebuiltBundlePlansANewDigest(t *testing.T) {
	accPrereqs(t)
	path := filepath.Join(t.TempDir(), "node-image.tar.gz")
	v1 := buildNodeImage(t, path, "v0.1.0")
	var v2 string
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{
			{
				Config: nodeImageConfig(path),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("berth_node_image.this", "digest", v1),
					resource.TestCheckResourceAttr("berth_node_image.this", "id", v1),
				),
			},
			{
				// The same file plans nothing.
				Config:   nodeImageConfig(path),
				PlanOnly: true,
			},
			{
				PreConfig: func() { v2 = buildNodeImage(t, path, "v0.2.0") },
				Config:    nodeImageConfig(path),
				Check: func(s *terraform.State) error {
					got := s.RootModule().Resources["berth_node_image.this"].Primary.Attributes["digest"]
					if got != v2 || got == v1 {
						return fmt.Errorf("digest after rebuild = %s, want %s (was %s)", got, v2, v1)
					}
					return nil
				},
			},
		},
	})
}

func TestAccNodeImageThatIsNotABundleFailsNamingTheFile(t *testing.T) {
	accPrereqs(t)
	path := filepath.Join(t.TempDir(), "not-an-image.tar.gz")
	if err := os.WriteFile(path, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6,
		Steps: []resource.TestStep{{
			Config:      nodeImageConfig(path),
			ExpectError: regexp.MustCompile(`(?s)Cannot read the node image.*not-an-image`),
		}},
	})
}
