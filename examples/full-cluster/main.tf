# A whole berth cluster from one `terraform apply`: the node image, a
# control plane, a pool of workers, and a web deployment behind a NodePort
# service created through a second provider configured from the cluster's
# outputs.

terraform {
  required_providers {
    berth = { source = "berth-io/berth" }
  }
}

# Provisions hosts over SSH; these defaults apply to every host that does
# not set its own.
provider "berth" {
  ssh {
    user        = "root"
    private_key = file(var.private_key_path)
  }
}

resource "berth_node_image" "this" {
  path = var.image_path
}

resource "berth_cluster" "this" {
  control_plane_hosts   = var.control_plane_hosts
  image_path            = berth_node_image.this.path
  image_digest          = berth_node_image.this.digest
  etcd_heartbeat_ms     = var.etcd_heartbeat_ms
  etcd_election_ms      = var.etcd_election_ms
  plain_http_registries = var.plain_http_registries
  drain_timeout         = "2m"
  health_timeout        = "3m"
}

resource "berth_node_pool" "workers" {
  name                  = "workers"
  hosts                 = var.worker_hosts
  labels                = { pool = "workers" }
  image_path            = berth_node_image.this.path
  image_digest          = berth_node_image.this.digest
  max_unavailable       = 1
  endpoints             = berth_cluster.this.endpoints
  ca_certificate        = berth_cluster.this.ca_certificate
  client_certificate    = berth_cluster.this.client_certificate
  client_key            = berth_cluster.this.client_key
  cluster_cidr          = berth_cluster.this.cluster_cidr
  service_cidr          = berth_cluster.this.service_cidr
  plain_http_registries = berth_cluster.this.plain_http_registries
}

# Talks to the cluster made above: its configuration is unknown while the
# first plan is made, and known once berth_cluster has been created.
provider "berth" {
  alias              = "cluster"
  endpoints          = berth_cluster.this.endpoints
  ca_certificate     = berth_cluster.this.ca_certificate
  client_certificate = berth_cluster.this.client_certificate
  client_key         = berth_cluster.this.client_key
}

resource "berth_deployment" "web" {
  provider = berth.cluster
  name     = "web"
  replicas = var.replicas

  template = {
    labels        = { app = "web" }
    node_selector = { pool = "workers" }
    containers = [{
      name  = "web"
      image = var.web_image
      ports = [{ name = "http", container_port = 8080 }]
      readiness_probe = {
        http_get       = { path = "/healthz", port = "http" }
        period_seconds = 1
      }
    }]
  }

  strategy = {
    max_surge       = "1"
    max_unavailable = "0"
    on_failure      = "Rollback"
  }
  progress_deadline_seconds = 90

  # Pods need the workers.
  depends_on = [berth_node_pool.workers]
}

resource "berth_service" "web" {
  provider = berth.cluster
  name     = "web"
  type     = "NodePort"
  selector = { app = "web" }
  ports = [{
    name        = "http"
    port        = 80
    target_port = "http"
    node_port   = var.node_port
  }]
}
