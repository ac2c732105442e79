package framework

import (
	"context"
	"fmt"
	"os"
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

	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/provider/cluster"
)

var (
	_ resource.ResourceWithConfigure   = (*clusterResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*clusterResource)(nil)
	_ resource.ResourceWithImportState = (*clusterResource)(nil)
)

// Defaults of berth_cluster settings, shared by schema defaults and docs.
const (
	defaultAPIPort         = 6443
	defaultEtcdHeartbeatMs = 100
	defaultEtcdElectionMs  = 1000
	defaultClusterCIDR     = "10.244.0.0/16"
	defaultServiceCIDR     = "10.96.0.0/16"
)

// NewClusterResource returns the berth_cluster resource: a control plane
// installed on SSH-reachable hosts by the provisioning engine.
func NewClusterResource() resource.Resource { return &clusterResource{} }

type clusterResource struct {
	clientHolder
}

type clusterModel struct {
	ID                  types.String `tfsdk:"id"`
	ControlPlaneHosts   types.Map    `tfsdk:"control_plane_hosts"`
	ImagePath           types.String `tfsdk:"image_path"`
	ImageDigest         types.String `tfsdk:"image_digest"`
	APIPort             types.Int64  `tfsdk:"api_port"`
	EtcdHeartbeatMs     types.Int64  `tfsdk:"etcd_heartbeat_ms"`
	EtcdElectionMs      types.Int64  `tfsdk:"etcd_election_ms"`
	ClusterCIDR         types.String `tfsdk:"cluster_cidr"`
	ServiceCIDR         types.String `tfsdk:"service_cidr"`
	PlainHTTPRegistries types.List   `tfsdk:"plain_http_registries"`
	DrainTimeout        types.String `tfsdk:"drain_timeout"`
	HealthTimeout       types.String `tfsdk:"health_timeout"`
	SnapshotPath        types.String `tfsdk:"snapshot_path"`

	ClusterID         types.String `tfsdk:"cluster_id"`
	Endpoints         types.List   `tfsdk:"endpoints"`
	CACertificate     types.String `tfsdk:"ca_certificate"`
	CAKey             types.String `tfsdk:"ca_key"`
	ClientCertificate types.String `tfsdk:"client_certificate"`
	ClientKey         types.String `tfsdk:"client_key"`
	HostStatus        types.Map    `tfsdk:"host_status"`
}

func (r *clusterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func (r *clusterResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = clusterResourceSchema()
}

func keep() []planmodifier.String {
	return []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
}

func clusterResourceSchema() schema.Schema {
	return schema.Schema{
		MarkdownDescription: "A berth cluster's control plane on SSH-reachable hosts. Create bootstraps etcd and the control plane on the " +
			"first host (by name) and joins the others one at a time; an update replaces hosts whose image or settings changed one at a time " +
			"(etcd snapshot first, quorum checked before and after each) and moves etcd membership when hosts are swapped; destroy drains " +
			"and wipes every host. The plan says in words what will happen. The cluster CA is created once and kept in state: it is never " +
			"regenerated. Worker hosts belong to `berth_node_pool`. Progress (host, step, elapsed) is logged at INFO (`TF_LOG=INFO`).",
		Attributes: map[string]schema.Attribute{
			"control_plane_hosts": hostsAttribute("control-plane hosts (1, 3 or 5 give etcd a clear majority)", true),
			"image_path": schema.StringAttribute{Required: true,
				MarkdownDescription: "Path of the node image bundle on the machine running Terraform (`berth_node_image.path`)."},
			"image_digest": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Digest the bundle must have (`berth_node_image.digest`); a new digest rolls every host onto the new image."},
			"api_port": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(defaultAPIPort),
				MarkdownDescription: "HTTPS port of the control-plane API." + defaultDoc(defaultAPIPort)},
			"etcd_heartbeat_ms": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(defaultEtcdHeartbeatMs),
				MarkdownDescription: "etcd heartbeat interval in milliseconds; raise it where members share slow CPUs." + defaultDoc(defaultEtcdHeartbeatMs)},
			"etcd_election_ms": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(defaultEtcdElectionMs),
				MarkdownDescription: "etcd election timeout in milliseconds (about 10 heartbeats)." + defaultDoc(defaultEtcdElectionMs)},
			"cluster_cidr": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(defaultClusterCIDR),
				MarkdownDescription: "Pod network; each node gets a /24 of it." + defaultDoc(defaultClusterCIDR)},
			"service_cidr": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(defaultServiceCIDR),
				MarkdownDescription: "Range service virtual IPs come from." + defaultDoc(defaultServiceCIDR)},
			"plain_http_registries": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Image registries (`host:port`) nodes reach over plain HTTP."},
			"drain_timeout": schema.StringAttribute{Optional: true,
				MarkdownDescription: "How long draining one host may take during a rolling replacement, for example `5m`. Default `5m`."},
			"health_timeout": schema.StringAttribute{Optional: true,
				MarkdownDescription: "How long a host may take to become healthy after an install before it is switched back to its previous image. Default `5m`."},
			"snapshot_path": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Local file an etcd snapshot is written to before control-plane hosts are replaced or moved. Empty: no snapshot is kept."},

			"id":         schema.StringAttribute{Computed: true, PlanModifiers: keep(), MarkdownDescription: "The cluster ID."},
			"cluster_id": schema.StringAttribute{Computed: true, PlanModifiers: keep(), MarkdownDescription: "ID the control plane reported when the cluster was bootstrapped."},
			"endpoints": schema.ListAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "HTTPS URLs of the control-plane hosts: configure a second (aliased) berth provider with them to manage workloads."},
			"ca_certificate": schema.StringAttribute{Computed: true, PlanModifiers: keep(),
				MarkdownDescription: "PEM certificate of the cluster CA."},
			"ca_key": schema.StringAttribute{Computed: true, Sensitive: true, PlanModifiers: keep(),
				MarkdownDescription: "PEM key of the cluster CA, created on create and never regenerated. Keep the state safe; back this key up (see the import docs)."},
			"client_certificate": schema.StringAttribute{Computed: true, PlanModifiers: keep(),
				MarkdownDescription: "PEM admin client certificate signed by the cluster CA."},
			"client_key": schema.StringAttribute{Computed: true, Sensitive: true, PlanModifiers: keep(),
				MarkdownDescription: "PEM key of `client_certificate`."},
			"host_status": hostStatusAttribute(),
		},
	}
}

func (r *clusterResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.configureResource(req, resp)
}

func (r *clusterResource) sshDefaults() SSHDefaults {
	if r.data == nil {
		return SSHDefaults{User: DefaultSSHUser, Port: DefaultSSHPort, Known: true}
	}
	return r.data.SSH
}

// spec builds the engine's Spec from the model; known is false when part
// of it is unknown (plan time).
func (r *clusterResource) spec(ctx context.Context, m clusterModel, diags *diag.Diagnostics) (cluster.Spec, bool) {
	hosts, known := expandHosts(ctx, m.ControlPlaneHosts, r.sshDefaults(), diags)
	s := cluster.Spec{
		ControlPlane: hosts,
		Image:        cluster.Image{Path: m.ImagePath.ValueString(), Digest: m.ImageDigest.ValueString()},
		Settings: cluster.Settings{
			APIPort: int(m.APIPort.ValueInt64()), EtcdHeartbeatMs: int(m.EtcdHeartbeatMs.ValueInt64()), EtcdElectionMs: int(m.EtcdElectionMs.ValueInt64()),
			ClusterCIDR: m.ClusterCIDR.ValueString(), ServiceCIDR: m.ServiceCIDR.ValueString(),
			PlainHTTPRegistries: stringList(m.PlainHTTPRegistries),
		},
		Rollout: cluster.RolloutPolicy{
			DrainTimeout:  durationOf(m.DrainTimeout, "drain_timeout", diags),
			HealthTimeout: durationOf(m.HealthTimeout, "health_timeout", diags),
		},
		SnapshotPath: m.SnapshotPath.ValueString(),
	}
	for _, v := range []attr.Value{m.ImagePath, m.ImageDigest, m.APIPort, m.EtcdHeartbeatMs, m.EtcdElectionMs, m.ClusterCIDR, m.ServiceCIDR, m.PlainHTTPRegistries, m.SnapshotPath} {
		known = known && !v.IsUnknown()
	}
	return s, known
}

// engineState rebuilds the engine's State from the resource's state.
func engineState(ctx context.Context, m clusterModel, hosts map[string]cluster.HostState) cluster.State {
	var eps []string
	if !m.Endpoints.IsNull() && !m.Endpoints.IsUnknown() {
		_ = m.Endpoints.ElementsAs(ctx, &eps, false)
	}
	return cluster.State{
		ClusterID: m.ClusterID.ValueString(), Endpoints: eps,
		CACertPEM: m.CACertificate.ValueString(), CAKeyPEM: m.CAKey.ValueString(),
		AdminCertPEM: m.ClientCertificate.ValueString(), AdminKeyPEM: m.ClientKey.ValueString(),
		Hosts: hosts,
	}
}

func setEngineState(m *clusterModel, st cluster.State) {
	m.ClusterID, m.ID = types.StringValue(st.ClusterID), types.StringValue(st.ClusterID)
	eps := make([]attr.Value, 0, len(st.Endpoints))
	for _, e := range st.Endpoints {
		eps = append(eps, types.StringValue(e))
	}
	m.Endpoints = types.ListValueMust(types.StringType, eps)
	m.CACertificate, m.CAKey = types.StringValue(st.CACertPEM), types.StringValue(st.CAKeyPEM)
	m.ClientCertificate, m.ClientKey = types.StringValue(st.AdminCertPEM), types.StringValue(st.AdminKeyPEM)
	m.HostStatus = hostStatus(st.Hosts)
}

// plannedEndpoints are the endpoints Apply will publish: the control-plane
// hosts in name order.
func plannedEndpoints(s cluster.Spec) types.List {
	port := s.Settings.APIPort
	if port == 0 {
		port = defaultAPIPort
	}
	var eps []attr.Value
	for _, h := range s.ControlPlane {
		ip := h.InternalIP
		if ip == "" {
			ip = h.SSH.Address
		}
		eps = append(eps, types.StringValue(fmt.Sprintf("https://%s", joinHostPort(ip, port))))
	}
	return types.ListValueMust(types.StringType, eps)
}

// sameStrings reports whether two string lists hold the same strings,
// in any order.
func sameStrings(ctx context.Context, a, b types.List) bool {
	if a.IsUnknown() || b.IsUnknown() || a.IsNull() != b.IsNull() {
		return false
	}
	var x, y []string
	_ = a.ElementsAs(ctx, &x, false)
	_ = b.ElementsAs(ctx, &y, false)
	if len(x) != len(y) {
		return false
	}
	seen := map[string]int{}
	for _, s := range x {
		seen[s]++
	}
	for _, s := range y {
		seen[s]--
		if seen[s] < 0 {
			return false
		}
	}
	return true
}

func joinHostPort(h string, p int) string {
	if strings.Contains(h, ":") {
		return fmt.Sprintf("[%s]:%d", h, p)
	}
	return fmt.Sprintf("%s:%d", h, p)
}

// ModifyPlan asks the engine what an apply would do and says it in a
// warning ("2 control-plane hosts will be replaced one at a time ..."), and
// plans the endpoints and host records.
func (r *clusterResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		if !req.State.Raw.IsNull() {
			resp.Diagnostics.AddWarning("The cluster will be destroyed",
				"Every host recorded in state will be drained and have berth's files, etcd data and credentials wiped. Workloads on it are lost.")
		}
		return
	}
	var plan clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec, known := r.spec(ctx, plan, &resp.Diagnostics)
	if resp.Diagnostics.HasError() || !known {
		return
	}
	prior := cluster.State{}
	hasPrior := !req.State.Raw.IsNull()
	var st clusterModel
	if hasPrior {
		resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
		prior = engineState(ctx, st, loadHosts(ctx, req.Private, &resp.Diagnostics))
	}
	sum, err := cluster.Plan(spec, prior)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("control_plane_hosts"), "Invalid cluster configuration",
			err.Error()+"\n\nFix the host names and addresses in control_plane_hosts.")
		return
	}
	headline := planHeadline(sum)
	if hasPrior && prior.ClusterID != "" && len(prior.Hosts) == 0 {
		headline, sum.Actions = adoptionSummary(sum)
	}
	plan.Endpoints = plannedEndpoints(spec)
	// While the control plane moves, the new endpoints serve only after
	// apply: planned as known, they would point a provider configured from
	// them (workloads, node pools) at hosts that do not answer yet during
	// this plan's refresh.
	if hasPrior && !sameStrings(ctx, st.Endpoints, plan.Endpoints) {
		plan.Endpoints = types.ListUnknown(types.StringType)
	}
	if sum.NoChanges() && hasPrior {
		plan.HostStatus = st.HostStatus
	} else {
		plan.HostStatus = types.MapUnknown(types.ObjectType{AttrTypes: hostStatusAttrTypes})
		resp.Diagnostics.AddWarning("berth_cluster: "+headline, "The engine will, in order:\n- "+strings.Join(sum.Actions, "\n- "))
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// adoptionSummary words the plan of an imported cluster, whose state has
// the cluster but no host yet: its hosts are not new, so they do not
// "join"; the apply records each one already on the configured image and
// settings as it is, and installs only the others. It returns the
// headline and the actions.
func adoptionSummary(s cluster.PlanSummary) (string, []string) {
	if len(s.Join) == 0 {
		return planHeadline(s), s.Actions
	}
	return fmt.Sprintf("%d host(s) of the imported cluster will be adopted", len(s.Join)), []string{fmt.Sprintf("hosts %s of the imported cluster are checked over SSH one at a time: a host already on the configured image and settings "+
		"is recorded as it is, without being reinstalled or restarted; any other is installed (a control-plane host that is not yet an etcd member "+
		"joins as a learner and is promoted)", strings.Join(s.Join, ", "))}
}

// planHeadline is the one-line summary of a plan.
func planHeadline(s cluster.PlanSummary) string {
	var parts []string
	if s.Bootstrap {
		parts = append(parts, "a new cluster will be bootstrapped")
	}
	if n := len(s.Join); n > 0 {
		parts = append(parts, fmt.Sprintf("%d host(s) will join", n))
	}
	if n := len(s.Replace); n > 0 {
		parts = append(parts, fmt.Sprintf("%d node(s) will be replaced one at a time", n))
	}
	if n := len(s.Leave); n > 0 {
		parts = append(parts, fmt.Sprintf("%d host(s) will be drained and wiped", n))
	}
	if len(parts) == 0 {
		return "no host changes"
	}
	return strings.Join(parts, "; ")
}

func (r *clusterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, m, cluster.State{}, &resp.State, resp.Private, &resp.Diagnostics)
}

func (r *clusterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, st clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() {
		return
	}
	prior := engineState(ctx, st, loadHosts(ctx, req.Private, &resp.Diagnostics))
	r.apply(ctx, m, prior, &resp.State, resp.Private, &resp.Diagnostics)
}

type stateSetter interface {
	Set(ctx context.Context, val any) diag.Diagnostics
}

// apply runs the engine and saves the State it returns, even on error (it
// records every host changed so far).
func (r *clusterResource) apply(ctx context.Context, m clusterModel, prior cluster.State, state stateSetter, private privateSetter, diags *diag.Diagnostics) {
	spec, _ := r.spec(ctx, m, diags)
	if diags.HasError() {
		return
	}
	st, err := cluster.Apply(ctx, spec, prior, engineOptions(ctx, "berth_cluster"))
	if st.ClusterID != "" || len(st.Hosts) > 0 {
		setEngineState(&m, st)
		saveHosts(ctx, private, st.Hosts, diags)
		diags.Append(state.Set(ctx, &m)...)
	}
	if err != nil {
		engineError(diags, "Cluster apply failed", err)
		return
	}
}

// Read keeps what the engine recorded: the hosts are checked (and healed)
// by the next apply, not by a refresh over SSH.
func (r *clusterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *clusterResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	st := engineState(ctx, m, loadHosts(ctx, req.Private, &resp.Diagnostics))
	if err := cluster.Destroy(ctx, st, engineOptions(ctx, "berth_cluster")); err != nil {
		resp.Diagnostics.AddError("Cluster destroy failed", err.Error()+
			"\n\nThe hosts named above could not be wiped. Make them reachable and run destroy again, or remove them by hand.")
	}
}

// ImportState adopts an existing cluster and its CA, so lost state never
// leads to a second CA: the ID is "ADMIN_CONFIG,CA_KEY_FILE", an admin
// client configuration (admin.json: endpoints, CA certificate, admin
// identity) and the CA's key file (/etc/berth/pki/ca.key on a
// control-plane host). The next apply records the hosts without
// reinstalling those already on the configured image and settings.
func (r *clusterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	cfgPath, keyPath, ok := strings.Cut(req.ID, ",")
	if !ok || cfgPath == "" || keyPath == "" {
		resp.Diagnostics.AddError("Invalid import ID",
			fmt.Sprintf("Import ID %q must be ADMIN_CONFIG,CA_KEY_FILE, for example .cache/demo/admin.json,./ca.key (copy the key from /etc/berth/pki/ca.key on a control-plane host).", req.ID))
		return
	}
	cfg, err := client.LoadConfig(cfgPath)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read the admin configuration", err.Error())
		return
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read the CA key", err.Error())
		return
	}
	if _, err := pki.LoadCA([]byte(cfg.CACertificate), key); err != nil {
		resp.Diagnostics.AddError("The CA key does not match the CA certificate",
			fmt.Sprintf("%s does not load with the CA certificate of %s: %v.\n\nUse the key of the cluster's own CA.", keyPath, cfgPath, err))
		return
	}
	cli, err := client.New(cfg, client.WithTimeout(requestTimeout))
	if err != nil {
		resp.Diagnostics.AddError("Cannot build a client from the admin configuration", err.Error())
		return
	}
	defer cli.Close()
	cp, err := cli.ControlPlane(ctx)
	if err != nil {
		resp.Diagnostics.AddError("The cluster does not answer", fmt.Sprintf("GET /v1/controlplane at %v: %v.\n\nImport needs the running cluster.", cfg.Endpoints, err))
		return
	}
	// The state is null until the attributes below are set: there is
	// nothing to read from it.
	var m clusterModel
	setEngineState(&m, cluster.State{ClusterID: cp.ClusterID, Endpoints: cfg.Endpoints, CACertPEM: cfg.CACertificate, CAKeyPEM: string(key),
		AdminCertPEM: cfg.ClientCertificate, AdminKeyPEM: cfg.ClientKey})
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), m.ID)...)
	for _, a := range []struct {
		p string
		v attr.Value
	}{{"cluster_id", m.ClusterID}, {"endpoints", m.Endpoints}, {"ca_certificate", m.CACertificate}, {"ca_key", m.CAKey},
		{"client_certificate", m.ClientCertificate}, {"client_key", m.ClientKey}, {"host_status", m.HostStatus}} {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(a.p), a.v)...)
	}
}
