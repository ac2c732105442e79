variable "image_path" {
  description = "Node image bundle (make image writes bin/node-image.tar.gz)."
  type        = string
}

variable "private_key_path" {
  description = "SSH private key authorised on every host."
  type        = string
}

variable "control_plane_hosts" {
  description = "Control-plane hosts keyed by name: address, optional port and pinned host_key."
  type = map(object({
    address  = string
    port     = optional(number)
    host_key = optional(string)
  }))
}

variable "worker_hosts" {
  description = "Worker hosts keyed by name, as control_plane_hosts."
  type = map(object({
    address  = string
    port     = optional(number)
    host_key = optional(string)
  }))
}

variable "plain_http_registries" {
  description = "Registries (host:port) reached over plain HTTP."
  type        = list(string)
  default     = []
}

variable "web_image" {
  description = "Image of the web deployment."
  type        = string
}

variable "replicas" {
  description = "Replicas of the web deployment."
  type        = number
  default     = 3
}

variable "node_port" {
  description = "Node port of the web service."
  type        = number
  default     = 30080
}

variable "etcd_heartbeat_ms" {
  description = "etcd heartbeat; raised where many members share slow CPUs."
  type        = number
  default     = 300
}

variable "etcd_election_ms" {
  description = "etcd election timeout."
  type        = number
  default     = 3000
}
