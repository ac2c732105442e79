package cli

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/internal/version"
	"github.com/berth-io/berth/provider/nodeimage"
)

func init() {
	extraCommands = append(extraCommands, newImageCmd)
}

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Build and inspect node images"}
	var spec nodeimage.BuildSpec
	var out string
	build := &cobra.Command{
		Use:   "build --runtime-dir DIR --out FILE",
		Short: "Build a node image bundle: berth, containerd, runc and the CNI plugins, all statically linked",
		Long: `Build a node image: a reproducible bundle whose sha256 is its identity.
The runtime directory is what scripts/build-runtime.sh prints (static
containerd, shim, ctr, runc and CNI plugins at pinned versions). Every
executable must be statically linked; a dynamically linked one is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if spec.RuntimeDir == "" {
				return fmt.Errorf("--runtime-dir is required: the directory scripts/build-runtime.sh prints")
			}
			if out == "" {
				return fmt.Errorf("--out is required: where to write the bundle")
			}
			if spec.BerthBinary == "" {
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find this berth binary: %w (pass --berth)", err)
				}
				spec.BerthBinary = self
			}
			if spec.BerthVersion == "" {
				spec.BerthVersion = version.Version
			}
			m, d, err := nodeimage.BuildFile(cmd.Context(), spec, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s\n", d)
			fmt.Fprintf(g.stderr, "wrote %s: berth %s, %d files, components %v\n", out, m.BerthVersion, len(m.Files), m.Components)
			return nil
		},
	}
	build.Flags().StringVar(&spec.RuntimeDir, "runtime-dir", "", "directory of the static runtime (bin/, cni/bin/, versions.json)")
	build.Flags().StringVar(&spec.BerthBinary, "berth", "", "berth binary to include (default: this one)")
	build.Flags().StringVar(&spec.BerthVersion, "berth-version", "", "version recorded in the manifest (default: this build's)")
	build.Flags().StringSliceVar(&spec.ExtraImages, "preload", nil, "OCI image archives to preload on nodes (repeatable)")
	build.Flags().StringVar(&out, "out", "", "where to write the bundle")

	inspect := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Verify a bundle and print its digest and manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, d, err := nodeimage.Open(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "digest: %s\nberth: %s\narchitecture: %s\n", d, m.BerthVersion, m.Architecture)
			for _, k := range sortedKeys(m.Components) {
				fmt.Fprintf(g.stdout, "component %s: %s\n", k, m.Components[k])
			}
			for _, f := range m.Files {
				fmt.Fprintf(g.stdout, "%s %10d %s %s\n", f.Mode, f.Size, f.SHA256[:12], f.Path)
			}
			return nil
		},
	}
	cmd.AddCommand(build, inspect)
	return cmd
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
