terraform {
  required_providers {
    berth = {
      source = "berth-io/berth"
    }
  }
}

# Credentials from the admin.json that `berth control --dev` writes.
provider "berth" {
  config_path = "${path.module}/admin.json"
}

# Or explicit credentials, for example from a berth_cluster created in the
# same configuration (values may be unknown until it exists).
provider "berth" {
  alias              = "explicit"
  endpoints          = ["https://198.18.0.10:6443"]
  ca_certificate     = file("${path.module}/ca.crt")
  client_certificate = file("${path.module}/admin.crt")
  client_key         = file("${path.module}/admin.key")

  ssh {
    user        = "root"
    private_key = file("~/.ssh/id_ed25519")
    jump_host {
      host = "bastion.example.net"
    }
  }
}
