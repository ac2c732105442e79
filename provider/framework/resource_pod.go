package framework

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Default waits of berth_pod.
const (
	defaultPodCreateTimeout = 5 * time.Minute
	defaultPodDeleteTimeout = 5 * time.Minute
)

var (
	_ resource.ResourceWithConfigure        = (*podResource)(nil)
	_ resource.ResourceWithImportState      = (*podResource)(nil)
	_ resource.ResourceWithValidateConfig   = (*podResource)(nil)
	_ resource.ResourceWithConfigValidators = (*podResource)(nil)
	_ resource.ResourceWithModifyPlan       = (*podResource)(nil)
)

// NewPodResource returns the berth_pod resource: a single pod, immutable
// once created (every change replaces it).
func NewPodResource() resource.Resource { return &podResource{} }

type podResource struct {
	clientHolder
}

func (r *podResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_pod"
}

func (r *podResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = podResourceSchema(ctx)
}

func podResourceSchema(ctx context.Context) schema.Schema {
	attrs := metadataAttributes("pod", true)
	attrs["name"] = schema.StringAttribute{
		Optional: true,
		Computed: true,
		MarkdownDescription: fmt.Sprintf("Name of the pod: a DNS label of at most %d characters. Conflicts with `name_prefix`; "+
			"one of the two is required. Changing it replaces the pod.", api.MaxNameLength),
		PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplace()},
	}
	attrs["name_prefix"] = schema.StringAttribute{
		Optional: true,
		MarkdownDescription: fmt.Sprintf("Prefix of a name the control plane generates (at most %d characters). A generated name lets "+
			"`lifecycle { create_before_destroy = true }` start the replacement pod before the old one stops, since the two never share a name.",
			api.MaxNameLength-5),
		PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
	}
	for k, v := range podSpecAttributes(true, "") {
		attrs[k] = v
	}
	attrs["wait_for_ready"] = schema.BoolAttribute{
		Optional: true, Computed: true, Default: booldefault.StaticBool(true),
		MarkdownDescription: "Wait after creating until the pod is Running and Ready. A pod that cannot get there (image pull errors, crash loops) " +
			"fails the apply early with its reasons, events and last log lines." + defaultDoc(true),
	}
	computed := map[string]string{
		"uid":       "Unique ID of this incarnation of the pod.",
		"node_name": "Node the scheduler bound the pod to.",
		"pod_ip":    "Address of the pod on the pod network.",
		"phase":     "Phase of the pod: `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.",
	}
	for k, d := range computed {
		a := schema.StringAttribute{Computed: true, MarkdownDescription: d}
		if k != "phase" {
			a.PlanModifiers = []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
		}
		attrs[k] = a
	}
	attrs["resource_version"] = schema.Int64Attribute{Computed: true, MarkdownDescription: "Version of the stored pod; it changes with every status report.",
		PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}}
	return schema.Schema{
		MarkdownDescription: "A pod: one or more containers that run together on one node and share a network address. " +
			"A pod never changes once created, so every change replaces it; use `berth_deployment` for workloads that update without downtime.",
		Attributes: attrs,
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Delete: true}),
		},
	}
}

func (r *podResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.configureResource(req, resp)
}

func (r *podResource) ConfigValidators(context.Context) []resource.ConfigValidator {
	return []resource.ConfigValidator{resourcevalidator.ExactlyOneOf(path.MatchRoot("name"), path.MatchRoot("name_prefix"))}
}

func (r *podResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m podModel
	if diags := req.Config.Get(ctx, &m); diags.HasError() {
		return // parts are unknown; the control plane validates at apply
	}
	resp.Diagnostics.Append(validateObject(ctx, expandPod(m), req.Config, podFields)...)
}

// ModifyPlan keeps the prior spelling of unchanged quantities and replaces
// the pod when its containers change.
func (r *podResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() {
		return
	}
	var plan, state podModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	keepQuantitySpelling(plan.Containers, state.Containers)
	// In place, only Terraform-side settings change, so what the control
	// plane reports stays as it is.
	plan.Phase = state.Phase
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	var planned, prior types.List
	resp.Diagnostics.Append(resp.Plan.GetAttribute(ctx, path.Root("containers"), &planned)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("containers"), &prior)...)
	if !planned.Equal(prior) {
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("containers"))
	}
}

func expandPod(m podModel) *api.Pod {
	p := &api.Pod{
		Metadata: api.ObjectMeta{
			Name:        m.Name.ValueString(),
			Namespace:   m.Namespace.ValueString(),
			Labels:      stringMap(m.Labels),
			Annotations: stringMap(m.Annotations),
		},
		Spec: expandPodSpec(m.podSpecModel),
	}
	if p.Metadata.Name == "" {
		p.Metadata.GenerateName = m.NamePrefix.ValueString()
	}
	return p
}

// flattenPod sets m from the stored pod, keeping m's choices where the
// control plane cannot tell them apart.
func flattenPod(p *api.Pod, m *podModel) {
	m.ID = objectID(&p.Metadata)
	m.Name = types.StringValue(p.Metadata.Name)
	m.Namespace = types.StringValue(p.Metadata.Namespace)
	m.Labels = mapValue(p.Metadata.Labels, m.Labels)
	m.Annotations = mapValue(p.Metadata.Annotations, m.Annotations)
	prior := m.podSpecModel
	m.podSpecModel = flattenPodSpec(p.Spec, &prior)
	m.UID = types.StringValue(p.Metadata.UID)
	m.NodeName = types.StringValue(p.Spec.NodeName)
	m.PodIP = types.StringValue(p.Status.PodIP)
	m.Phase = types.StringValue(string(p.Status.Phase))
	m.ResourceVersion = types.Int64Value(p.Metadata.ResourceVersion)
}

func (r *podResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m podModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Create(ctx, defaultPodCreateTimeout)
	resp.Diagnostics.Append(diags...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := expandPod(m)
	tflog.Info(ctx, "creating pod", map[string]any{"namespace": p.Metadata.Namespace, "name": p.Metadata.Name, "generate_name": p.Metadata.GenerateName})
	if err := cli.Create(ctx, p); err != nil {
		resp.Diagnostics.AddError("Cannot create the pod", err.Error())
		return
	}
	flattenPod(p, &m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	if !m.WaitForReady.ValueBool() {
		return
	}
	ready, err := waitPodReady(ctx, cli, p.Metadata.Namespace, p.Metadata.Name)
	if ready != nil {
		flattenPod(ready, &m)
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	}
	if err != nil {
		resp.Diagnostics.AddError("The pod did not become ready", err.Error()+
			"\n\nThe pod exists and is recorded as tainted: the next apply replaces it. Set wait_for_ready = false to not wait.")
	}
}

func (r *podResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m podModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if r.configPending() {
		// The prior state stands until the configuration is known.
		return
	}
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ns, name, err := splitID(m.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("Invalid pod ID", err.Error())
		return
	}
	var p api.Pod
	if err := cli.Get(ctx, ns, name, &p); err != nil {
		if api.IsNotFound(err) {
			tflog.Info(ctx, "pod is gone; removing it from state", map[string]any{"pod": ns + "/" + name})
			resp.State.RemoveResource(ctx)
			return
		}
		resp.Diagnostics.AddError("Cannot read the pod", err.Error())
		return
	}
	flattenPod(&p, &m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Update changes only what lives in Terraform alone (waits and timeouts):
// every attribute the control plane holds forces a replacement.
func (r *podResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state podModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	state.WaitForReady = plan.WaitForReady
	state.Timeouts = plan.Timeouts
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *podResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m podModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Delete(ctx, defaultPodDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &api.Pod{Metadata: api.ObjectMeta{Namespace: m.Namespace.ValueString(), Name: m.Name.ValueString()}}
	tflog.Info(ctx, "deleting pod", map[string]any{"pod": m.ID.ValueString()})
	if err := deleteAndWait(ctx, cli, p); err != nil {
		resp.Diagnostics.AddError("Cannot delete the pod", err.Error())
	}
}

func deleteAndWait(ctx context.Context, cli *client.Client, obj api.Object) error {
	if err := cli.Delete(ctx, obj); err != nil {
		if api.IsNotFound(err) {
			return nil
		}
		return err
	}
	return waitGone(ctx, cli, obj)
}

func (r *podResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	ns, name, err := splitID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), ns+"/"+name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("namespace"), ns)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("wait_for_ready"), true)...)
}
