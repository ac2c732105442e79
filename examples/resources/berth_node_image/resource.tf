resource "berth_node_image" "this" {
  path = "bin/node-image.tar.gz"
}
