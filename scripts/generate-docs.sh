#!/usr/bin/env bash
# Regenerates the Terraform provider's documentation (docs/) from its schema
# and examples/ with tfplugindocs, without downloading anything: the
# provider is built here, Terraform reads its schema through dev_overrides,
# and tfplugindocs (pinned in tools/tfplugindocs, its own module) gets that
# schema through --providers-schema.
#
# Usage: scripts/generate-docs.sh [OUTPUT_DIR]   (default: docs, in the repo)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-docs}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

export CHECKPOINT_DISABLE=1
# terraform on PATH, else OpenTofu built once (scripts/terraform.sh).
tf="$("$root/scripts/terraform.sh")"

mkdir -p "$tmp/bin" "$tmp/schema"
(cd "$root" && CGO_ENABLED=0 go build -o "$tmp/bin/terraform-provider-berth" ./provider/cmd/terraform-provider-berth)
(cd "$root/tools/tfplugindocs" && go build -o "$tmp/bin/tfplugindocs" github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs)

cat >"$tmp/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "berth-io/berth" = "$tmp/bin"
    "registry.opentofu.org/berth-io/berth" = "$tmp/bin"
  }
  direct {}
}
RC
cat >"$tmp/schema/main.tf" <<'TF'
terraform {
  required_providers {
    berth = { source = "berth-io/berth" }
  }
}
TF
# tfplugindocs looks the schema up by the provider's short name.
(cd "$tmp/schema" && TF_CLI_CONFIG_FILE="$tmp/terraformrc" "$tf" providers schema -json 2>/dev/null) |
  sed -E 's#"registry\.(terraform|opentofu)\.(io|org)/berth-io/berth"#"berth"#' >"$tmp/schema.json"
grep -q '"berth_deployment"' "$tmp/schema.json" || { echo "generate-docs: the provider schema lacks berth_deployment" >&2; exit 1; }

cd "$root"
"$tmp/bin/tfplugindocs" generate \
  --provider-dir "$root" \
  --provider-name berth \
  --providers-schema "$tmp/schema.json" \
  --rendered-website-dir "$out" \
  --examples-dir examples \
  --website-source-dir templates >/dev/null
echo "generate-docs: wrote $out"
