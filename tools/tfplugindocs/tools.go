//go:build tools

// Package tfplugindocs pins the documentation generator in a module of its
// own, so it never enters the product's module graph. Build it with
// `go build -o DIR github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs`
// from this directory (scripts/generate-docs.sh does).
package tfplugindocs

import _ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
