package bridge

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// recordingTFServer records the apply requests it receives.
type recordingTFServer struct {
	tfprotov6.ProviderServer
	got *tfprotov6.ApplyResourceChangeRequest
}

func (s *recordingTFServer) ApplyResourceChange(_ context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	s.got = req
	return &tfprotov6.ApplyResourceChangeResponse{}, nil
}

// deletingServer stands in for the bridge: its Delete applies a delete
// through the Terraform server with the context it was given.
type deletingServer struct {
	pulumirpc.ResourceProviderServer
	tf tfprotov6.ProviderServer
}

func (s deletingServer) Delete(ctx context.Context, _ *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	_, err := s.tf.ApplyResourceChange(ctx, &tfprotov6.ApplyResourceChangeRequest{TypeName: "berth_cluster"})
	return &emptypb.Empty{}, err
}

func outputsWithMeta(t *testing.T, meta string) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(map[string]any{"id": "c1", metaKey: meta})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDeleteReceivesThePrivateStateKeptInTheOutputs(t *testing.T) {
	private := []byte(`{"hosts":{"cp-1":{"address":"198.18.0.4"}}}`)
	meta := `{"private_state":"` + base64.StdEncoding.EncodeToString(private) + `","schema_version":"0"}`
	tf := &recordingTFServer{}
	srv := WithPrivateStateOnDelete(deletingServer{tf: privateStateServer{tf}})
	if _, err := srv.Delete(context.Background(), &pulumirpc.DeleteRequest{Properties: outputsWithMeta(t, meta)}); err != nil {
		t.Fatal(err)
	}
	if string(tf.got.PlannedPrivate) != string(private) {
		t.Fatalf("the delete's PlannedPrivate = %q, want the private state %q", tf.got.PlannedPrivate, private)
	}
}

func TestApplyKeepsThePrivateStateTheBridgeSent(t *testing.T) {
	tf := &recordingTFServer{}
	ctx := context.WithValue(context.Background(), privateStateKey{}, []byte("from outputs"))
	_, _ = privateStateServer{tf}.ApplyResourceChange(ctx, &tfprotov6.ApplyResourceChangeRequest{PlannedPrivate: []byte("planned")})
	if string(tf.got.PlannedPrivate) != "planned" {
		t.Fatalf("PlannedPrivate = %q, want the bridge's own %q", tf.got.PlannedPrivate, "planned")
	}
}

func TestResourcesWithoutPrivateStateDeleteAsBefore(t *testing.T) {
	for name, props := range map[string]*structpb.Struct{
		"no meta":           {Fields: map[string]*structpb.Value{"id": structpb.NewStringValue("web")}},
		"meta without it":   outputsWithMeta(t, `{"schema_version":"1"}`),
		"unreadable meta":   outputsWithMeta(t, `not json`),
		"undecodable state": outputsWithMeta(t, `{"private_state":"%%%"}`),
	} {
		t.Run(name, func(t *testing.T) {
			tf := &recordingTFServer{}
			srv := WithPrivateStateOnDelete(deletingServer{tf: privateStateServer{tf}})
			if _, err := srv.Delete(context.Background(), &pulumirpc.DeleteRequest{Properties: props}); err != nil {
				t.Fatal(err)
			}
			if tf.got.PlannedPrivate != nil {
				t.Fatalf("PlannedPrivate = %q, want none", tf.got.PlannedPrivate)
			}
		})
	}
}

func TestProviderShimServesThroughThePrivateStateServer(t *testing.T) {
	p, ok := Provider().P.(privateStateShim)
	if !ok {
		t.Fatalf("ProviderInfo.P is %T, want the private-state shim", Provider().P)
	}
	s, err := p.Server(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(privateStateServer); !ok {
		t.Fatalf("the shim serves %T, want privateStateServer", s)
	}
}
