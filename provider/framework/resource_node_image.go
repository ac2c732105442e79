package framework

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/berth-io/berth/provider/nodeimage"
)

var (
	_ resource.Resource               = (*nodeImageResource)(nil)
	_ resource.ResourceWithModifyPlan = (*nodeImageResource)(nil)
)

// NewNodeImageResource returns the berth_node_image resource: a node image
// bundle on the machine running Terraform, known by its digest.
func NewNodeImageResource() resource.Resource { return &nodeImageResource{} }

type nodeImageResource struct{}

type nodeImageModel struct {
	ID     types.String `tfsdk:"id"`
	Path   types.String `tfsdk:"path"`
	Digest types.String `tfsdk:"digest"`
}

func (r *nodeImageResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_node_image"
}

func (r *nodeImageResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = nodeImageResourceSchema()
}

func nodeImageResourceSchema() schema.Schema {
	return schema.Schema{
		MarkdownDescription: "A node image bundle (`berth image build`, `make image`) on the machine running Terraform. " +
			"Its `digest` is the bundle's sha256, checked against the manifest inside it; when the file changes, the " +
			"digest changes at plan time, so clusters and node pools that use it roll their hosts onto the new image.",
		Attributes: map[string]schema.Attribute{
			"path": schema.StringAttribute{Required: true,
				MarkdownDescription: "Path of the bundle, for example `bin/node-image.tar.gz`."},
			"digest": schema.StringAttribute{Computed: true,
				MarkdownDescription: "Digest of the bundle, `sha256:<hex>`: pass it to `berth_cluster.image_digest` and `berth_node_pool.image_digest`."},
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The digest."},
		},
	}
}

// openImage verifies the bundle and returns its digest.
func openImage(ctx context.Context, p string) (string, error) {
	_, d, err := nodeimage.Open(ctx, p)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

func imageDiag(resp interface {
	AddAttributeError(path.Path, string, string)
}, p string, err error) {
	resp.AddAttributeError(path.Root("path"), "Cannot read the node image",
		fmt.Sprintf("The node image bundle %q cannot be verified: %v.\n\nBuild it with `make image` (scripts/image.sh) or point `path` at an existing bundle.", p, err))
}

// ModifyPlan plans the digest of the file as it is now, so a rebuilt bundle
// shows as an update (and rolls whatever uses the digest).
func (r *nodeImageResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan nodeImageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || plan.Path.IsUnknown() {
		return
	}
	if _, err := os.Stat(plan.Path.ValueString()); err != nil {
		// Perhaps made later in the same apply: known at apply time.
		plan.Digest, plan.ID = types.StringUnknown(), types.StringUnknown()
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	d, err := openImage(ctx, plan.Path.ValueString())
	if err != nil {
		imageDiag(&resp.Diagnostics, plan.Path.ValueString(), err)
		return
	}
	plan.Digest, plan.ID = types.StringValue(d), types.StringValue(d)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *nodeImageResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m nodeImageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.settle(ctx, &m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *nodeImageResource) settle(ctx context.Context, m *nodeImageModel, diags interface {
	AddAttributeError(path.Path, string, string)
}) {
	d, err := openImage(ctx, m.Path.ValueString())
	if err != nil {
		imageDiag(diags, m.Path.ValueString(), err)
		return
	}
	m.Digest, m.ID = types.StringValue(d), types.StringValue(d)
}

// Read keeps the recorded digest: a changed file shows up in the next plan
// (ModifyPlan), and a bundle removed after use does not remove the
// resource.
func (r *nodeImageResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m nodeImageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *nodeImageResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m nodeImageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.settle(ctx, &m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete forgets the image; the file is the user's.
func (r *nodeImageResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {
}
