package framework

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/berth-io/berth/provider/cluster"
)

var (
	_ resource.ResourceWithConfigure  = (*nodePoolResource)(nil)
	_ resource.ResourceWithModifyPlan = (*nodePoolResource)(nil)
)

// NewNodePoolResource returns the berth_node_pool resource: worker hosts
// joined to a cluster, upgraded in rolling batches.
func NewNodePoolResource() resource.Resource { return &nodePoolResource{} }

type nodePoolResource struct {
	clientHolder
}

type nodePoolModel struct {
	ID                  types.String `tfsdk:"id"`
	Name                types.String `tfsdk:"name"`
	Hosts               types.Map    `tfsdk:"hosts"`
	Labels              types.Map    `tfsdk:"labels"`
	ImagePath           types.String `tfsdk:"image_path"`
	ImageDigest         types.String `tfsdk:"image_digest"`
	MaxUnavailable      types.Int64  `tfsdk:"max_unavailable"`
	DrainTimeout        types.String `tfsdk:"drain_timeout"`
	HealthTimeout       types.String `tfsdk:"health_timeout"`
	Endpoints           types.List   `tfsdk:"endpoints"`
	CACertificate       types.String `tfsdk:"ca_certificate"`
	ClientCertificate   types.String `tfsdk:"client_certificate"`
	ClientKey           types.String `tfsdk:"client_key"`
	ClusterCIDR         types.String `tfsdk:"cluster_cidr"`
	ServiceCIDR         types.String `tfsdk:"service_cidr"`
	PlainHTTPRegistries types.List   `tfsdk:"plain_http_registries"`
	HostStatus          types.Map    `tfsdk:"host_status"`
}

func (r *nodePoolResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_node_pool"
}

func (r *nodePoolResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = nodePoolResourceSchema()
}

func nodePoolResourceSchema() schema.Schema {
	return schema.Schema{
		MarkdownDescription: "A pool of worker hosts joined to a `berth_cluster`. New hosts join with a join token minted for each join " +
			"(never stored in state); hosts whose image or labels changed are replaced `max_unavailable` at a time (cordon, drain, install, " +
			"wait until Ready on the new image, uncordon); hosts removed from `hosts` are drained, deleted and wiped. Take the cluster's " +
			"`endpoints`, `ca_certificate`, `client_certificate`, `client_key` and network settings from the `berth_cluster`.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				MarkdownDescription: "Name of the pool (lower-case letters, digits and `-`). Changing it replaces the pool."},
			"hosts": hostsAttribute("worker hosts", true),
			"labels": schema.MapAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Labels added to every Node of the pool (a host's own `labels` win)."},
			"image_path": schema.StringAttribute{Required: true,
				MarkdownDescription: "Path of the node image bundle on the machine running Terraform (`berth_node_image.path`)."},
			"image_digest": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Digest the bundle must have (`berth_node_image.digest`); a new digest rolls the pool onto the new image."},
			"max_unavailable": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(1),
				MarkdownDescription: "How many hosts of the pool are replaced at once during a rolling update." + defaultDoc(1)},
			"drain_timeout": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("5m"),
				MarkdownDescription: "How long draining one host may take." + defaultDoc("5m")},
			"health_timeout": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("5m"),
				MarkdownDescription: "How long a host may take to become healthy after an install before it is switched back to its previous image." + defaultDoc("5m")},
			"endpoints": schema.ListAttribute{ElementType: types.StringType, Required: true,
				MarkdownDescription: "Control-plane endpoints (`berth_cluster.endpoints`)."},
			"ca_certificate": schema.StringAttribute{Required: true,
				MarkdownDescription: "Cluster CA certificate (`berth_cluster.ca_certificate`)."},
			"client_certificate": schema.StringAttribute{Required: true,
				MarkdownDescription: "Admin client certificate (`berth_cluster.client_certificate`), used to mint join tokens and drain nodes."},
			"client_key": schema.StringAttribute{Required: true, Sensitive: true,
				MarkdownDescription: "Key of `client_certificate` (`berth_cluster.client_key`)."},
			"cluster_cidr": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(defaultClusterCIDR),
				MarkdownDescription: "The cluster's pod network (`berth_cluster.cluster_cidr`)." + defaultDoc(defaultClusterCIDR)},
			"service_cidr": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(defaultServiceCIDR),
				MarkdownDescription: "The cluster's service range (`berth_cluster.service_cidr`)." + defaultDoc(defaultServiceCIDR)},
			"plain_http_registries": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Registries (`host:port`) reached over plain HTTP (`berth_cluster.plain_http_registries`)."},
			"id":          schema.StringAttribute{Computed: true, PlanModifiers: keep(), MarkdownDescription: "The pool's name."},
			"host_status": hostStatusAttribute(),
		},
	}
}

func (r *nodePoolResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.configureResource(req, resp)
}

func (r *nodePoolResource) spec(ctx context.Context, m nodePoolModel, diags *diag.Diagnostics) (cluster.PoolSpec, bool) {
	d := SSHDefaults{User: DefaultSSHUser, Port: DefaultSSHPort, Known: true}
	if r.data != nil {
		d = r.data.SSH
	}
	hosts, known := expandHosts(ctx, m.Hosts, d, diags)
	labels := map[string]string{}
	if m.Labels.IsUnknown() {
		known = false
	} else if !m.Labels.IsNull() {
		diags.Append(m.Labels.ElementsAs(ctx, &labels, false)...)
	}
	s := cluster.PoolSpec{
		Cluster: cluster.ClusterAccess{Endpoints: stringList(m.Endpoints), CACertPEM: m.CACertificate.ValueString(),
			AdminCertPEM: m.ClientCertificate.ValueString(), AdminKeyPEM: m.ClientKey.ValueString()},
		Pool: cluster.WorkerPool{Name: m.Name.ValueString(), Hosts: hosts, Labels: labels, Rollout: cluster.RolloutPolicy{
			MaxUnavailable: int(m.MaxUnavailable.ValueInt64()),
			DrainTimeout:   durationOf(m.DrainTimeout, "drain_timeout", diags),
			HealthTimeout:  durationOf(m.HealthTimeout, "health_timeout", diags),
		}},
		Image:    cluster.Image{Path: m.ImagePath.ValueString(), Digest: m.ImageDigest.ValueString()},
		Settings: cluster.Settings{ClusterCIDR: m.ClusterCIDR.ValueString(), ServiceCIDR: m.ServiceCIDR.ValueString(), PlainHTTPRegistries: stringList(m.PlainHTTPRegistries)},
	}
	for _, v := range []attr.Value{m.Name, m.ImagePath, m.ImageDigest, m.MaxUnavailable, m.Endpoints, m.CACertificate, m.ClientCertificate, m.ClientKey, m.ClusterCIDR, m.ServiceCIDR, m.PlainHTTPRegistries} {
		known = known && !v.IsUnknown()
	}
	return s, known
}

// ModifyPlan says in words what the engine will do to the pool's hosts.
func (r *nodePoolResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan nodePoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var prior nodePoolModel
	hasPrior := !req.State.Raw.IsNull()
	if hasPrior {
		resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	}
	spec, known := r.spec(ctx, plan, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	endpointsPending := false
	if !known && hasPrior && plan.Endpoints.IsUnknown() {
		// The cluster's control plane moves in the same run: what happens
		// to the pool's hosts can still be said, with the endpoints it has.
		withPrior := plan
		withPrior.Endpoints = prior.Endpoints
		if s, ok := r.spec(ctx, withPrior, &resp.Diagnostics); ok {
			spec, known, endpointsPending = s, true, true
		}
	}
	if !known {
		if !hasPrior || !plan.Hosts.Equal(prior.Hosts) || !plan.ImageDigest.Equal(prior.ImageDigest) {
			plan.HostStatus = types.MapUnknown(types.ObjectType{AttrTypes: hostStatusAttrTypes})
			resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		}
		return
	}
	st := cluster.State{Hosts: loadHosts(ctx, req.Private, &resp.Diagnostics)}
	sum, err := cluster.PlanPool(spec, st)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("hosts"), "Invalid node pool configuration", err.Error()+"\n\nFix the pool's name, host names or addresses.")
		return
	}
	if endpointsPending {
		sum.Actions = append(sum.Actions, "the cluster's endpoints are known only after its control plane has moved; the pool's hosts are configured with them")
	}
	if sum.NoChanges() && hasPrior && !endpointsPending {
		plan.HostStatus = prior.HostStatus
	} else {
		plan.HostStatus = types.MapUnknown(types.ObjectType{AttrTypes: hostStatusAttrTypes})
		resp.Diagnostics.AddWarning("berth_node_pool "+plan.Name.ValueString()+": "+planHeadline(sum), "The engine will, in order:\n- "+strings.Join(sum.Actions, "\n- "))
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *nodePoolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m nodePoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, m, cluster.State{}, &resp.State, resp.Private, &resp.Diagnostics)
}

func (r *nodePoolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m nodePoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	prior := cluster.State{Hosts: loadHosts(ctx, req.Private, &resp.Diagnostics)}
	r.apply(ctx, m, prior, &resp.State, resp.Private, &resp.Diagnostics)
}

// apply runs the engine on the pool and saves the hosts it recorded, even
// on error.
func (r *nodePoolResource) apply(ctx context.Context, m nodePoolModel, prior cluster.State, state stateSetter, private privateSetter, diags *diag.Diagnostics) {
	spec, _ := r.spec(ctx, m, diags)
	if diags.HasError() {
		return
	}
	st, err := cluster.ApplyPool(ctx, spec, prior, engineOptions(ctx, "berth_node_pool "+spec.Pool.Name))
	m.ID = m.Name
	m.HostStatus = hostStatus(st.Hosts)
	saveHosts(ctx, private, st.Hosts, diags)
	diags.Append(state.Set(ctx, &m)...)
	if err != nil {
		engineError(diags, "Node pool apply failed", err)
	}
}

// Read keeps what the engine recorded; the next apply checks the hosts.
func (r *nodePoolResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m nodePoolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *nodePoolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m nodePoolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	access := cluster.ClusterAccess{Endpoints: stringList(m.Endpoints), CACertPEM: m.CACertificate.ValueString(),
		AdminCertPEM: m.ClientCertificate.ValueString(), AdminKeyPEM: m.ClientKey.ValueString()}
	st := cluster.State{Hosts: loadHosts(ctx, req.Private, &resp.Diagnostics)}
	if err := cluster.DestroyPool(ctx, access, st, engineOptions(ctx, "berth_node_pool "+m.Name.ValueString())); err != nil {
		resp.Diagnostics.AddError("Node pool destroy failed", err.Error()+
			"\n\nThe hosts named above could not be drained or wiped. Make them reachable and run destroy again.")
	}
}
