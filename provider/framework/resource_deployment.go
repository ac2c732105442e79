package framework

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/berth-io/berth/control/api"
)

// Default waits of berth_deployment.
const (
	defaultRolloutTimeout          = 10 * time.Minute
	defaultDeploymentDeleteTimeout = 5 * time.Minute
)

var (
	_ resource.ResourceWithConfigure      = (*deploymentResource)(nil)
	_ resource.ResourceWithImportState    = (*deploymentResource)(nil)
	_ resource.ResourceWithValidateConfig = (*deploymentResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*deploymentResource)(nil)
)

// NewDeploymentResource returns the berth_deployment resource: replicas of
// a pod template, updated in place by rolling updates that the control
// plane runs and this resource waits for.
func NewDeploymentResource() resource.Resource { return &deploymentResource{} }

type deploymentResource struct {
	clientHolder
}

func (r *deploymentResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_deployment"
}

func (r *deploymentResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = deploymentResourceSchema(ctx)
}

var strategyAttrTypes = map[string]attr.Type{
	"max_surge": types.StringType, "max_unavailable": types.StringType, "on_failure": types.StringType,
}

func deploymentResourceSchema(ctx context.Context) schema.Schema {
	attrs := metadataAttributes("deployment", false)
	replicas := int64Default(int64(api.DefaultReplicas))
	replicas.MarkdownDescription = "Number of pods, 0-10000." + defaultDoc(api.DefaultReplicas)
	attrs["replicas"] = replicas
	attrs["selector"] = schema.MapAttribute{
		ElementType: types.StringType, Optional: true, Computed: true,
		MarkdownDescription: "Labels that pick the deployment's pods; they must match `template.labels`. Default: `template.labels`. " +
			"Changing it replaces the deployment.",
		PlanModifiers: []planmodifier.Map{selectorDefault{}, mapplanmodifier.RequiresReplace()},
	}
	tmpl := podSpecAttributes(false, " A deployment's pods must use `Always`.")
	tmpl["labels"] = schema.MapAttribute{ElementType: types.StringType, Optional: true,
		MarkdownDescription: "Labels of the pods; the selector must match them (and defaults to them)."}
	tmpl["annotations"] = schema.MapAttribute{ElementType: types.StringType, Optional: true,
		MarkdownDescription: "Annotations of the pods."}
	attrs["template"] = schema.SingleNestedAttribute{
		Required: true,
		MarkdownDescription: "The pod every replica is made from. A change rolls out as a rolling update bounded by `strategy`, " +
			"gated on readiness and limited by `progress_deadline_seconds`.",
		Attributes: tmpl,
	}
	attrs["strategy"] = schema.SingleNestedAttribute{
		Optional: true, Computed: true,
		Default: objectdefault.StaticValue(types.ObjectValueMust(strategyAttrTypes, map[string]attr.Value{
			"max_surge": types.StringValue(api.DefaultMaxSurge), "max_unavailable": types.StringValue(api.DefaultMaxUnavailable),
			"on_failure": types.StringValue(string(api.FailureRollback)),
		})),
		MarkdownDescription: "How a template change rolls out.",
		Attributes: map[string]schema.Attribute{
			"max_surge": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(api.DefaultMaxSurge),
				MarkdownDescription: "Pods above `replicas` allowed during an update: a number (`1`) or a percentage (`25%`, rounded up)." + defaultDoc(api.DefaultMaxSurge)},
			"max_unavailable": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(api.DefaultMaxUnavailable),
				MarkdownDescription: "Pods below `replicas` that may be unavailable during an update: a number or a percentage (rounded down). " +
					"It must not be 0 together with `max_surge`." + defaultDoc(api.DefaultMaxUnavailable)},
			"on_failure": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(string(api.FailureRollback)),
				Validators: oneOf(api.FailurePolicies),
				MarkdownDescription: "What a rollout that misses its progress deadline does: `Rollback` returns to the last revision that completed; " +
					"`Pause` stops where it is. " + oneOfDoc(api.FailurePolicies) + defaultDoc(api.FailureRollback)},
		},
	}
	minReady := int64Default(0)
	minReady.MarkdownDescription = "Seconds a new pod must be Ready before it counts as available." + defaultDoc(0)
	attrs["min_ready_seconds"] = minReady
	deadline := int64Default(int64(api.DefaultProgressDeadlineSeconds))
	deadline.MarkdownDescription = "Seconds a rollout may go without progress before it fails and `strategy.on_failure` applies; " +
		"must exceed `min_ready_seconds`." + defaultDoc(api.DefaultProgressDeadlineSeconds)
	attrs["progress_deadline_seconds"] = deadline
	history := int64Default(int64(api.DefaultRevisionHistoryLimit))
	history.MarkdownDescription = "Old revisions kept for rollback." + defaultDoc(api.DefaultRevisionHistoryLimit)
	attrs["revision_history_limit"] = history
	attrs["paused"] = schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
		MarkdownDescription: "Stops the rollout where it is. The `Pause` failure policy sets it on the control plane; the next plan then shows it and applying `false` resumes." + defaultDoc(false)}
	attrs["wait_for_rollout"] = schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
		MarkdownDescription: "Wait until the rollout completes. A rollout that fails, pauses or rolls back fails the apply with what is live now and the failing pods' events, " +
			"probe failures and last log lines; the state then holds what the control plane holds, so the change is never recorded as applied." + defaultDoc(true)}
	for k, d := range map[string]string{
		"live_revision":      "Revision that last completed a rollout: what serves.",
		"desired_revision":   "Revision the template maps to.",
		"available_replicas": "Pods Ready for at least `min_ready_seconds`.",
		"ready_replicas":     "Ready pods.",
	} {
		attrs[k] = schema.Int64Attribute{Computed: true, MarkdownDescription: d}
	}
	attrs["rollout_state"] = schema.StringAttribute{Computed: true,
		MarkdownDescription: "Outcome of the latest rollout: " + oneOfDoc([]api.RolloutState{api.RolloutProgressing, api.RolloutComplete, api.RolloutFailed, api.RolloutRolledBack, api.RolloutPaused})}
	return schema.Schema{
		MarkdownDescription: "A deployment keeps `replicas` identical pods running and replaces them by a rolling update when the template changes. " +
			"The apply waits for the rollout; a failed rollout is never recorded as applied.",
		Attributes: attrs,
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

// selectorDefault plans the selector as the template's labels when the
// configuration leaves it out, as the control plane defaults it.
type selectorDefault struct{}

func (selectorDefault) Description(context.Context) string {
	return "defaults to the template's labels"
}

func (m selectorDefault) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (selectorDefault) PlanModifyMap(ctx context.Context, req planmodifier.MapRequest, resp *planmodifier.MapResponse) {
	if !req.ConfigValue.IsNull() {
		return
	}
	var labels types.Map
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("template").AtName("labels"), &labels)...)
	if labels.IsUnknown() {
		resp.PlanValue = types.MapUnknown(types.StringType)
		return
	}
	resp.PlanValue = mapValue(stringMap(labels), types.MapNull(types.StringType))
}

func (r *deploymentResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.configureResource(req, resp)
}

func (r *deploymentResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m deploymentModel
	if diags := req.Config.Get(ctx, &m); diags.HasError() || m.Template == nil {
		return
	}
	d := expandDeployment(m)
	// Fields the configuration leaves out take the schema defaults, which
	// equal the control plane's; an explicit "" is the user's own error.
	resp.Diagnostics.Append(validateObject(ctx, d, req.Config, deploymentFields)...)
}

// ModifyPlan keeps the prior spelling of unchanged quantities, so the
// same amounts written differently roll nothing out.
func (r *deploymentResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() {
		return
	}
	var plan, state deploymentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || plan.Template == nil || state.Template == nil {
		return
	}
	keepQuantitySpelling(plan.Template.Containers, state.Template.Containers)
	// When nothing but spelling changed, there is nothing to apply: keep
	// the status the framework marked unknown.
	status := plan
	plan.LiveRevision, plan.DesiredRevision, plan.RolloutState = state.LiveRevision, state.DesiredRevision, state.RolloutState
	plan.AvailableReplicas, plan.ReadyReplicas = state.AvailableReplicas, state.ReadyReplicas
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	if !resp.Plan.Raw.Equal(req.State.Raw) {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &status)...)
	}
}

func expandDeployment(m deploymentModel) *api.Deployment {
	d := &api.Deployment{
		Metadata: api.ObjectMeta{
			Name: m.Name.ValueString(), Namespace: m.Namespace.ValueString(),
			Labels: stringMap(m.Labels), Annotations: stringMap(m.Annotations),
		},
		Spec: api.DeploymentSpec{
			Selector:        stringMap(m.Selector),
			MinReadySeconds: int32(m.MinReadySeconds.ValueInt64()),
			Paused:          m.Paused.ValueBool(),
		},
	}
	set := func(v types.Int64) *int32 {
		if v.IsNull() || v.IsUnknown() {
			return nil
		}
		n := int32(v.ValueInt64())
		return &n
	}
	d.Spec.Replicas = set(m.Replicas)
	d.Spec.ProgressDeadlineSeconds = set(m.ProgressDeadlineSeconds)
	d.Spec.RevisionHistoryLimit = set(m.RevisionHistoryLimit)
	if t := m.Template; t != nil {
		d.Spec.Template = api.PodTemplate{
			Metadata: api.TemplateMeta{Labels: stringMap(t.Labels), Annotations: stringMap(t.Annotations)},
			Spec:     expandPodSpec(t.podSpecModel),
		}
	}
	if s := m.Strategy; s != nil {
		d.Spec.Strategy.OnFailure = api.FailurePolicy(s.OnFailure.ValueString())
		if !s.MaxSurge.IsNull() && !s.MaxSurge.IsUnknown() {
			v := intOrString(s.MaxSurge)
			d.Spec.Strategy.MaxSurge = &v
		}
		if !s.MaxUnavailable.IsNull() && !s.MaxUnavailable.IsUnknown() {
			v := intOrString(s.MaxUnavailable)
			d.Spec.Strategy.MaxUnavailable = &v
		}
	}
	return d
}

// flattenDeployment sets m from the stored deployment, keeping m's choices
// where the control plane cannot tell them apart.
func flattenDeployment(d *api.Deployment, m *deploymentModel) {
	m.ID = objectID(&d.Metadata)
	m.Name = types.StringValue(d.Metadata.Name)
	m.Namespace = types.StringValue(d.Metadata.Namespace)
	m.Labels = mapValue(d.Metadata.Labels, m.Labels)
	m.Annotations = mapValue(d.Metadata.Annotations, m.Annotations)
	m.Replicas = types.Int64Value(int64(replicasOf(d)))
	m.Selector = mapValue(d.Spec.Selector, m.Selector)
	var prior templateModel
	if m.Template != nil {
		prior = *m.Template
	}
	t := &templateModel{
		Labels:       mapValue(d.Spec.Template.Metadata.Labels, prior.Labels),
		Annotations:  mapValue(d.Spec.Template.Metadata.Annotations, prior.Annotations),
		podSpecModel: flattenPodSpec(d.Spec.Template.Spec, &prior.podSpecModel),
	}
	m.Template = t
	st := d.Spec.Strategy
	s := &strategyModel{OnFailure: types.StringValue(string(st.OnFailure)),
		MaxSurge: types.StringValue(api.DefaultMaxSurge), MaxUnavailable: types.StringValue(api.DefaultMaxUnavailable)}
	if st.MaxSurge != nil {
		s.MaxSurge = types.StringValue(st.MaxSurge.String())
	}
	if st.MaxUnavailable != nil {
		s.MaxUnavailable = types.StringValue(st.MaxUnavailable.String())
	}
	m.Strategy = s
	m.MinReadySeconds = types.Int64Value(int64(d.Spec.MinReadySeconds))
	intOr := func(p *int32, def int32) types.Int64 {
		if p == nil {
			return types.Int64Value(int64(def))
		}
		return types.Int64Value(int64(*p))
	}
	m.ProgressDeadlineSeconds = intOr(d.Spec.ProgressDeadlineSeconds, api.DefaultProgressDeadlineSeconds)
	m.RevisionHistoryLimit = intOr(d.Spec.RevisionHistoryLimit, api.DefaultRevisionHistoryLimit)
	m.Paused = types.BoolValue(d.Spec.Paused)
	m.LiveRevision = types.Int64Value(d.Status.LiveRevision)
	m.DesiredRevision = types.Int64Value(d.Status.DesiredRevision)
	m.RolloutState = types.StringValue(string(d.Status.RolloutState))
	m.AvailableReplicas = types.Int64Value(int64(d.Status.AvailableReplicas))
	m.ReadyReplicas = types.Int64Value(int64(d.Status.ReadyReplicas))
}

// settle waits for the rollout of generation (when asked to) and records
// what the control plane holds afterwards, failed or not.
func (r *deploymentResource) settle(ctx context.Context, m *deploymentModel, d *api.Deployment, wait bool, set func(*deploymentModel) bool) error {
	if !wait {
		flattenDeployment(d, m)
		set(m)
		return nil
	}
	cli, err := r.data.Client(ctx)
	if err != nil {
		return err
	}
	out := waitRollout(ctx, cli, d)
	final := out.deployment
	if final == nil {
		final = d
	}
	// Read once more after the outcome, so the state has the template the
	// controller left (rolled back, or paused) and the latest status.
	var latest api.Deployment
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	if err := cli.Get(rctx, d.Metadata.Namespace, d.Metadata.Name, &latest); err == nil {
		final = &latest
	}
	flattenDeployment(final, m)
	set(m)
	return out.err
}

func (r *deploymentResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m deploymentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Create(ctx, defaultRolloutTimeout)
	resp.Diagnostics.Append(diags...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := expandDeployment(m)
	tflog.Info(ctx, "creating deployment", map[string]any{"namespace": d.Metadata.Namespace, "name": d.Metadata.Name})
	if err := cli.Create(ctx, d); err != nil {
		resp.Diagnostics.AddError("Cannot create the deployment", err.Error())
		return
	}
	set := func(m *deploymentModel) bool {
		resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
		return !resp.Diagnostics.HasError()
	}
	flattenDeployment(d, &m)
	set(&m)
	if err := r.settle(ctx, &m, d, m.WaitForRollout.ValueBool(), set); err != nil {
		resp.Diagnostics.AddError("The deployment's first rollout failed", err.Error())
	}
}

func (r *deploymentResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m deploymentModel
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
		resp.Diagnostics.AddError("Invalid deployment ID", err.Error())
		return
	}
	var d api.Deployment
	if err := cli.Get(ctx, ns, name, &d); err != nil {
		if api.IsNotFound(err) {
			tflog.Info(ctx, "deployment is gone; removing it from state", map[string]any{"deployment": ns + "/" + name})
			resp.State.RemoveResource(ctx)
			return
		}
		resp.Diagnostics.AddError("Cannot read the deployment", err.Error())
		return
	}
	flattenDeployment(&d, &m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *deploymentResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m deploymentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Update(ctx, defaultRolloutTimeout)
	resp.Diagnostics.Append(diags...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := expandDeployment(m)
	var d api.Deployment
	for attempt := 0; ; attempt++ {
		if err := cli.Get(ctx, want.Metadata.Namespace, want.Metadata.Name, &d); err != nil {
			resp.Diagnostics.AddError("Cannot read the deployment to update it", err.Error())
			return
		}
		d.Metadata.Labels, d.Metadata.Annotations = want.Metadata.Labels, want.Metadata.Annotations
		d.Spec = want.Spec
		err := cli.Update(ctx, &d)
		if err == nil {
			break
		}
		if !api.IsConflict(err) || attempt >= 5 {
			resp.Diagnostics.AddError("Cannot update the deployment", err.Error())
			return
		}
		tflog.Debug(ctx, "deployment changed while updating it; retrying", map[string]any{"attempt": attempt})
	}
	tflog.Info(ctx, "updated deployment; waiting for the rollout", map[string]any{"deployment": m.ID.ValueString(), "generation": d.Metadata.Generation})
	set := func(m *deploymentModel) bool {
		resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
		return !resp.Diagnostics.HasError()
	}
	if err := r.settle(ctx, &m, &d, m.WaitForRollout.ValueBool(), set); err != nil {
		resp.Diagnostics.AddError("The deployment's rollout failed", err.Error())
	}
}

func (r *deploymentResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m deploymentModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := m.Timeouts.Delete(ctx, defaultDeploymentDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tflog.Info(ctx, "deleting deployment", map[string]any{"deployment": m.ID.ValueString()})
	d := &api.Deployment{Metadata: api.ObjectMeta{Namespace: m.Namespace.ValueString(), Name: m.Name.ValueString()}}
	if err := deleteAndWait(ctx, cli, d); err != nil {
		resp.Diagnostics.AddError("Cannot delete the deployment", fmt.Sprintf("%v", err))
	}
}

func (r *deploymentResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	ns, name, err := splitID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), ns+"/"+name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("namespace"), ns)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("wait_for_rollout"), true)...)
}
