// Package bridge maps berth's Terraform provider (provider/framework) onto
// Pulumi through pulumi-terraform-bridge's plugin-framework support
// (pkg/pf): one ProviderInfo with the tokens (berth:index:Deployment,
// berth:index:getNodes, ...), the Go SDK's import path and the attributes
// Pulumi must treat as secrets.
//
// Two thin commands sit beside it: cmd/pulumi-tfgen-berth generates the
// Pulumi schema, the bridge metadata and the Go SDK (sdk/go/berth) from this
// mapping, and cmd/pulumi-resource-berth is the provider plugin the Pulumi
// engine runs, with the schema and metadata embedded.
//
// Two gaps of the bridge (v3.120.0) are closed here rather than worked
// around in the provider: deletes do not receive the resource's Terraform
// private state, where berth_cluster and berth_node_pool record the hosts
// they installed (WithPrivateStateOnDelete restores it), and tfgen writes
// the Go SDK through `pulumi package gen-sdk` and the pulumi-language-go
// plugin (package generate calls the same Go code generator in-process).
//
// The mapping is computed from the Terraform provider's names, so a resource
// added to the provider gets its token without a change here; the tests fail
// when one would not. This package must never change what the Terraform
// provider does: it only names and annotates.
package bridge
