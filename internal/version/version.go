// Package version holds berth's version string, set at build time with
// -ldflags "-X github.com/berth-io/berth/internal/version.Version=...".
// Every binary reports it, and nodes publish it so the control plane can tell
// an agent one release behind from a current one.
package version

// Version is berth's version; "dev" for builds without a version.
var Version = "dev"
