// Package framework is berth's Terraform provider, written with
// terraform-plugin-framework: the berth_pod, berth_deployment and
// berth_service resources, the berth_nodes and berth_service_endpoints data
// sources, the provisioning resources berth_node_image, berth_cluster and
// berth_node_pool (on provider/cluster's Apply, ApplyPool, Plan and Destroy;
// the engine's per-host records, with SSH keys, live in private state), and
// the provider configuration (control-plane credentials and SSH defaults for
// host provisioning).
//
// The provider must plan even when its own configuration is not known yet
// (a cluster and its workloads created by one apply, the workloads through
// a second provider configured from the cluster's outputs), so it never
// builds a client in Configure: a resource asks for one only when it talks
// to the control plane. Plan-time validation builds the api object from the
// configuration and runs api.Default and api.Validate, so the provider and
// the control plane never disagree on what is valid, and every error names
// the attribute to fix.
//
// This package must never log secrets (client keys, SSH keys), and never
// report a deployment whose rollout failed, paused or rolled back as
// applied: state always mirrors what the control plane holds.
package framework
