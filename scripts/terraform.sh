#!/usr/bin/env bash
# Prints the path of a terraform binary: `terraform` on PATH if present,
# else OpenTofu built once from the Go module proxy (tools/opentofu) into
# .cache/bin/tofu.
#
#   scripts/terraform.sh                 print the binary's path
#   scripts/terraform.sh install-provider [VERSION]
#       build the provider into the local filesystem mirror
#       (.cache/tf-mirror/registry.terraform.io/berth-io/berth/VERSION/linux_amd64/,
#       and the same under registry.opentofu.org for OpenTofu)
#       and write .cache/terraformrc (use it as TF_CLI_CONFIG_FILE, with
#       CHECKPOINT_DISABLE=1), so `terraform init` needs no network; prints
#       the CLI config path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

terraform_bin() {
	if command -v terraform >/dev/null 2>&1; then
		command -v terraform
		return
	fi
	local tofu="$root/.cache/bin/tofu"
	if [ ! -x "$tofu" ]; then
		echo "terraform.sh: no terraform on PATH; building OpenTofu (about 3 minutes, once)" >&2
		mkdir -p "$root/.cache/bin"
		(cd "$root/tools/opentofu" && { [ -f go.sum ] || go mod download github.com/opentofu/opentofu; } &&
			GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$tofu" github.com/opentofu/opentofu/cmd/tofu) >&2
	fi
	echo "$tofu"
}

install_provider() {
	local version="${1:-0.0.1}"
	local os arch
	os="$(go env GOOS)"
	arch="$(go env GOARCH)"
	local dir="$root/.cache/tf-mirror/registry.terraform.io/berth-io/berth/$version/${os}_${arch}"
	mkdir -p "$dir"
	(cd "$root" && CGO_ENABLED=0 go build -ldflags "-X main.version=$version" \
		-o "$dir/terraform-provider-berth_v$version" ./provider/cmd/terraform-provider-berth) >&2
	# OpenTofu reads the short source "berth-io/berth" as
	# registry.opentofu.org/berth-io/berth: the mirror holds both addresses.
	local tofu_dir="$root/.cache/tf-mirror/registry.opentofu.org/berth-io/berth/$version/${os}_${arch}"
	mkdir -p "$tofu_dir"
	ln -f "$dir/terraform-provider-berth_v$version" "$tofu_dir/terraform-provider-berth_v$version"
	cat >"$root/.cache/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$root/.cache/tf-mirror"
    include = ["registry.terraform.io/berth-io/berth", "registry.opentofu.org/berth-io/berth"]
  }
}
disable_checkpoint = true
RC
	echo "$root/.cache/terraformrc"
}

case "${1:-}" in
"") terraform_bin ;;
install-provider) shift; install_provider "$@" ;;
*) echo "usage: scripts/terraform.sh [install-provider [VERSION]]" >&2; exit 2 ;;
esac
