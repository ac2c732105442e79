// Package nodeimage builds, reads and verifies berth node images: the one
// immutable, content-addressed bundle that the provider uploads to a host and
// unpacks into /opt/berth/images/<digest>/.
//
// # What a bundle holds
//
// A bundle is a gzip-compressed tar archive (plain `tar -xzf` unpacks it) of:
//
//	manifest.json                  always the first entry
//	bin/                           directory entries are included (mode 0755)
//	bin/berth                      the berth node binary
//	bin/containerd
//	bin/containerd-shim-runc-v2
//	bin/ctr
//	bin/runc
//	cni/bin/<plugin>               at least bridge, host-local, loopback, portmap
//	images/<name>.tar              optional OCI image archives to preload
//
// Every executable under bin/ and cni/bin/ is a statically linked ELF for one
// architecture: Build refuses any ELF with a program interpreter or needed
// shared libraries, naming the file, so an image runs on any Linux host.
// Executables have mode 0755, everything else 0644; directories 0755. Only
// regular files and directories are ever written: links, devices and every
// other entry type are refused when read, as are names the manifest does not
// list, so nothing can land outside the destination. File names are limited
// to letters, digits and "._-+" (not leading '.'), and every header is
// plain USTAR, so any tar reads a bundle.
//
// manifest.json records the format version ([FormatVersion]), the berth
// version, the architecture (Go's GOARCH spelling), the versions of the
// runtime components (from the runtime build's versions.json, e.g.
// containerd, runc, cni-plugins, go), and for every file its path, mode, size
// and sha256. Readers check every file against the manifest and refuse
// entries the manifest does not list.
//
// # Determinism and the digest
//
// The image's identity, its [Digest], is "sha256:" followed by the lower-case
// hex SHA-256 of the bundle's bytes exactly as written: the compressed file,
// not the tar inside it. Build makes those bytes a function of the inputs'
// contents only: entries are sorted by path after the manifest; every header
// has the same modification time (2000-01-01 00:00:00 UTC), uid and gid 0,
// no user or group names, and USTAR format; and the gzip header carries no
// name, time or OS-specific data. Two builds from the same inputs with the
// same berth build therefore produce the same digest, whatever the inputs'
// timestamps, owners or locations. (A berth built with another Go release
// may compress differently and so produce another digest for equal inputs.)
//
// # Reading and unpacking
//
// [Read] and [Open] stream a bundle once, returning its manifest and digest
// after checking every file against the manifest; [Verify] also compares the
// digest with an expected one. [Unpack] extracts into a fresh temporary
// directory beside the destination, checks every file's size and sha256 while
// writing it, and renames the directory into place only when the whole
// bundle checked out, so the destination never exists half-unpacked.
// [VerifyDir] re-checks an unpacked directory against its manifest.json, so
// the provisioning engine can trust what it finds on a host.
//
// This package must never import other berth packages, never log, and never
// follow or create symbolic links or write outside the directory it was given.
package nodeimage
