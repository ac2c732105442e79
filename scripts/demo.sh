#!/usr/bin/env bash
# The berth demo: a cluster of 1 control-plane host and 2 workers on a local
# testbed, made by one `terraform apply` of demo/ (berth_node_image,
# berth_cluster, berth_node_pool, a 3-replica web deployment behind a
# NodePort service), reachable through the testbed's load balancer.
#
#   scripts/demo.sh up     (make demo)       build, bring up, apply; converges when already up
#   scripts/demo.sh down   (make demo-down)  terraform destroy, testbed down
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

name=berth-demo
state="$root/.cache/demo"
inventory="$state/inventory.json"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
mkdir -p "$state"

say() { echo "berth demo: $*" >&2; }
testbed() { go run ./acceptance/cmd/testbed "$@"; }

terraform_env() {
	tf="$(scripts/terraform.sh)"
	export TF_CLI_CONFIG_FILE="$(scripts/terraform.sh install-provider)"
}

write_tfvars() {
	python3 - "$inventory" "$root/demo/terraform.tfvars.json" "$root/bin/node-image.tar.gz" <<'PY'
import json, sys
inv = json.load(open(sys.argv[1]))
hosts = {h["name"]: {"address": h["address"], "port": h["ssh_port"], "host_key": h["host_public_key"]} for h in inv["hosts"]}
names = sorted(hosts)
json.dump({
    "image_path": sys.argv[3],
    "private_key_path": inv["hosts"][0]["private_key_path"],
    "control_plane_hosts": {n: hosts[n] for n in names[:1]},
    "worker_hosts": {n: hosts[n] for n in names[1:3]},
    "plain_http_registries": [inv["registry"]],
    "web_image": inv["registry"] + "/berth-test/web:v1",
}, open(sys.argv[2], "w"), indent=2)
PY
}

up() {
	say "installing prerequisites"
	scripts/prereqs.sh
	say "building bin/berth and the node image"
	scripts/image.sh >/dev/null
	terraform_env
	if testbed inventory --name "$name" --out "$inventory" >/dev/null 2>&1; then
		say "testbed $name is already up"
	else
		say "bringing up testbed $name"
		testbed up --name "$name" --hosts vendor-a=3 --out "$inventory" >/dev/null
	fi
	say "pushing the web images to the testbed registry"
	go run ./acceptance/cmd/pushimages --inventory "$inventory" >/dev/null
	write_tfvars
	say "terraform init and apply (demo/)"
	rm -f demo/.terraform.lock.hcl
	"$tf" -chdir=demo init -input=false >/dev/null
	"$tf" -chdir=demo apply -input=false -auto-approve -no-color
	port="$("$tf" -chdir=demo output -raw node_port)"
	"$tf" -chdir=demo output -raw admin_config >"$state/admin.json"
	chmod 600 "$state/admin.json"
	say "pointing the load balancer at node port $port"
	testbed lb --name "$name" --port "$port" --wait >&2
	lb="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["load_balancer"])' "$inventory")"
	say "checking http://$lb/"
	ok=""
	for _ in $(seq 1 30); do
		if body="$(curl -fsS --max-time 2 "http://$lb/")"; then ok=1; break; fi
		sleep 1
	done
	[ -n "$ok" ] || { say "the service does not answer through the load balancer at $lb"; exit 1; }
	echo "$body" | head -n 3 >&2
	echo "berth demo: service reachable at http://$lb"
	echo "use the CLI against the cluster:"
	echo "  export BERTH_CONFIG=$state/admin.json; bin/berth get pods"
}

down() {
	if [ -f demo/terraform.tfstate ] && [ -f "$root/demo/terraform.tfvars.json" ]; then
		terraform_env
		rm -f demo/.terraform.lock.hcl
		"$tf" -chdir=demo init -input=false >/dev/null
		say "terraform destroy"
		"$tf" -chdir=demo destroy -input=false -auto-approve -no-color
	fi
	if testbed inventory --name "$name" >/dev/null 2>&1; then
		say "removing testbed $name"
		testbed down --name "$name"
	fi
	rm -rf "$state" demo/terraform.tfvars.json demo/.terraform demo/.terraform.lock.hcl demo/terraform.tfstate demo/terraform.tfstate.backup
	say "down"
}

case "${1:-up}" in
up) up ;;
down) down ;;
*) echo "usage: scripts/demo.sh up|down" >&2; exit 2 ;;
esac
