//go:build tools

// Package tools pins OpenTofu, built by scripts/terraform.sh when no
// terraform binary is on PATH.
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
