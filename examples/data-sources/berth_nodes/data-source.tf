data "berth_nodes" "ready" {}

output "ready_nodes" {
  value = [for n in data.berth_nodes.ready.nodes : n.name if n.ready]
}
