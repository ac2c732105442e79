package bridge

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The bridge (v3.120.0) keeps a resource's Terraform private state in the
// Pulumi state (`__meta.private_state`) and hands it to plan, create, update
// and read, but not to delete: its Delete sends ApplyResourceChange without
// PlannedPrivate. berth_cluster and berth_node_pool keep their record of
// the installed hosts in private state and wipe exactly those hosts on
// delete, so without it `pulumi destroy` would report success and leave
// every host as it was. Two small wrappers close the gap: the gRPC server's
// Delete puts the private state from the resource's outputs into the
// request's context, and the Terraform server the bridge calls sets it as
// PlannedPrivate of the delete, as Terraform itself does.

// metaKey is the bridge's reserved output holding private state.
const metaKey = "__meta"

type privateStateKey struct{}

// WithPrivateStateOnDelete wraps the provider plugin's gRPC server so that
// deletes see the resource's Terraform private state.
func WithPrivateStateOnDelete(srv pulumirpc.ResourceProviderServer) pulumirpc.ResourceProviderServer {
	return deleteWithPrivateState{srv}
}

type deleteWithPrivateState struct {
	pulumirpc.ResourceProviderServer
}

func (s deleteWithPrivateState) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if priv := privateStateOf(req.GetProperties()); priv != nil {
		ctx = context.WithValue(ctx, privateStateKey{}, priv)
	}
	return s.ResourceProviderServer.Delete(ctx, req)
}

// privateStateOf decodes `__meta.private_state` from a resource's outputs,
// or returns nil when there is none.
func privateStateOf(props *structpb.Struct) []byte {
	meta, ok := props.GetFields()[metaKey]
	if !ok {
		return nil
	}
	var m struct {
		PrivateState string `json:"private_state"`
	}
	if err := json.Unmarshal([]byte(meta.GetStringValue()), &m); err != nil || m.PrivateState == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(m.PrivateState)
	if err != nil {
		return nil
	}
	return b
}

// privateStateShim is the bridge's shim of the Terraform provider with its
// Terraform server wrapped by privateStateServer.
type privateStateShim struct {
	pf.ShimProvider
}

func (p privateStateShim) Server(ctx context.Context) (tfprotov6.ProviderServer, error) {
	s, err := p.ShimProvider.Server(ctx)
	if err != nil {
		return nil, err
	}
	return privateStateServer{s}, nil
}

// privateStateServer fills in PlannedPrivate of an apply from the context
// when the bridge left it out (deletes).
type privateStateServer struct {
	tfprotov6.ProviderServer
}

func (s privateStateServer) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	if priv, ok := ctx.Value(privateStateKey{}).([]byte); ok && len(req.PlannedPrivate) == 0 {
		r := *req
		r.PlannedPrivate = priv
		req = &r
	}
	return s.ProviderServer.ApplyResourceChange(ctx, req)
}
