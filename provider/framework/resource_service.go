package framework

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/berth-io/berth/control/api"
)

var (
	_ resource.ResourceWithConfigure      = (*serviceResource)(nil)
	_ resource.ResourceWithImportState    = (*serviceResource)(nil)
	_ resource.ResourceWithValidateConfig = (*serviceResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*serviceResource)(nil)
)

// NewServiceResource returns the berth_service resource: a stable virtual
// address (and optionally node ports) for the ready pods a selector picks.
func NewServiceResource() resource.Resource { return &serviceResource{} }

type serviceResource struct {
	clientHolder
}

func (r *serviceResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service"
}

func (r *serviceResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = serviceResourceSchema()
}

func serviceResourceSchema() schema.Schema {
	attrs := metadataAttributes("service", false)
	attrs["type"] = schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(string(api.ServiceClusterIP)),
		Validators: oneOf(api.ServiceTypes),
		MarkdownDescription: "How the service is reached: `ClusterIP` on a virtual IP inside the cluster, `NodePort` also on a port of every node. " +
			oneOfDoc(api.ServiceTypes) + defaultDoc(api.ServiceClusterIP)}
	attrs["selector"] = schema.MapAttribute{ElementType: types.StringType, Optional: true,
		MarkdownDescription: "Labels of the pods the service sends traffic to (only Ready pods receive it)."}
	attrs["ports"] = schema.ListNestedAttribute{
		Required:            true,
		MarkdownDescription: "Ports the service exposes; at least one.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Optional: true, MarkdownDescription: "Name of the port (a DNS label); required when there are several."},
			"protocol": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(string(api.ProtocolTCP)),
				Validators: oneOf(api.Protocols), MarkdownDescription: oneOfDoc(api.Protocols) + defaultDoc(api.ProtocolTCP)},
			"port": schema.Int64Attribute{Required: true, MarkdownDescription: "Port on the cluster IP, 1-65535."},
			"target_port": schema.StringAttribute{Optional: true, Computed: true,
				MarkdownDescription: "Port of the pods: a number or the name of a container port. Default: `port`."},
			"node_port": schema.Int64Attribute{Optional: true, Computed: true,
				MarkdownDescription: fmt.Sprintf("For `NodePort` services, the port on every node, %d-%d; allocated when not given and kept afterwards.", api.NodePortRange[0], api.NodePortRange[1])},
		}},
	}
	attrs["cluster_ip"] = schema.StringAttribute{Optional: true, Computed: true,
		MarkdownDescription: "Virtual IP of the service, allocated from the service CIDR unless a free one is given. Changing it replaces the service.",
		PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplace()}}
	return schema.Schema{
		MarkdownDescription: "A service: a stable virtual IP, a DNS name (`<name>.<namespace>.svc.berth`) and optionally node ports in front of the Ready pods its selector picks.",
		Attributes:          attrs,
	}
}

func (r *serviceResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.configureResource(req, resp)
}

func (r *serviceResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m serviceModel
	if diags := req.Config.Get(ctx, &m); diags.HasError() {
		return
	}
	resp.Diagnostics.Append(validateObject(ctx, expandService(m), req.Config, serviceFields)...)
}

// ModifyPlan plans target_port as the port when left out, and keeps
// allocated node ports: a NodePort service's ports keep the numbers they
// got, and a ClusterIP service has none.
func (r *serviceResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan, config serviceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var state *serviceModel
	if !req.State.Raw.IsNull() {
		state = &serviceModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	}
	for i := range plan.Ports {
		p := &plan.Ports[i]
		var c servicePortModel
		if i < len(config.Ports) {
			c = config.Ports[i]
		}
		if c.TargetPort.IsNull() && !p.Port.IsUnknown() {
			p.TargetPort = types.StringValue(fmt.Sprint(p.Port.ValueInt64()))
		}
		if !c.NodePort.IsNull() {
			continue
		}
		switch {
		case plan.Type.IsUnknown():
			p.NodePort = types.Int64Unknown()
		case plan.Type.ValueString() != string(api.ServiceNodePort):
			p.NodePort = types.Int64Null()
		case state != nil && state.Type.ValueString() == string(api.ServiceNodePort) && i < len(state.Ports) && !state.Ports[i].NodePort.IsNull():
			p.NodePort = state.Ports[i].NodePort
		default:
			p.NodePort = types.Int64Unknown()
		}
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func expandService(m serviceModel) *api.Service {
	s := &api.Service{
		Metadata: api.ObjectMeta{Name: m.Name.ValueString(), Namespace: m.Namespace.ValueString(), Labels: stringMap(m.Labels), Annotations: stringMap(m.Annotations)},
		Spec: api.ServiceSpec{
			Type:      api.ServiceType(m.Type.ValueString()),
			Selector:  stringMap(m.Selector),
			ClusterIP: m.ClusterIP.ValueString(),
		},
	}
	for _, p := range m.Ports {
		sp := api.ServicePort{Name: p.Name.ValueString(), Protocol: api.Protocol(p.Protocol.ValueString()), Port: int32(p.Port.ValueInt64()), NodePort: int32(p.NodePort.ValueInt64())}
		if !p.TargetPort.IsNull() && !p.TargetPort.IsUnknown() {
			sp.TargetPort = intOrString(p.TargetPort)
		}
		s.Spec.Ports = append(s.Spec.Ports, sp)
	}
	return s
}

func flattenService(s *api.Service, m *serviceModel) {
	m.ID = objectID(&s.Metadata)
	m.Name = types.StringValue(s.Metadata.Name)
	m.Namespace = types.StringValue(s.Metadata.Namespace)
	m.Labels = mapValue(s.Metadata.Labels, m.Labels)
	m.Annotations = mapValue(s.Metadata.Annotations, m.Annotations)
	m.Type = types.StringValue(string(s.Spec.Type))
	m.Selector = mapValue(s.Spec.Selector, m.Selector)
	m.ClusterIP = types.StringValue(s.Spec.ClusterIP)
	var ports []servicePortModel
	for _, p := range s.Spec.Ports {
		pm := servicePortModel{Name: optString(p.Name), Protocol: types.StringValue(string(p.Protocol)), Port: types.Int64Value(int64(p.Port)),
			TargetPort: types.StringValue(p.TargetPort.String()), NodePort: types.Int64Null()}
		if p.NodePort != 0 {
			pm.NodePort = types.Int64Value(int64(p.NodePort))
		}
		ports = append(ports, pm)
	}
	m.Ports = ports
}

func (r *serviceResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m serviceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s := expandService(m)
	tflog.Info(ctx, "creating service", map[string]any{"namespace": s.Metadata.Namespace, "name": s.Metadata.Name})
	if err := cli.Create(ctx, s); err != nil {
		resp.Diagnostics.AddError("Cannot create the service", err.Error())
		return
	}
	flattenService(s, &m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *serviceResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m serviceModel
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
		resp.Diagnostics.AddError("Invalid service ID", err.Error())
		return
	}
	var s api.Service
	if err := cli.Get(ctx, ns, name, &s); err != nil {
		if api.IsNotFound(err) {
			tflog.Info(ctx, "service is gone; removing it from state", map[string]any{"service": ns + "/" + name})
			resp.State.RemoveResource(ctx)
			return
		}
		resp.Diagnostics.AddError("Cannot read the service", err.Error())
		return
	}
	flattenService(&s, &m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *serviceResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m serviceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	want := expandService(m)
	var s api.Service
	for attempt := 0; ; attempt++ {
		if err := cli.Get(ctx, want.Metadata.Namespace, want.Metadata.Name, &s); err != nil {
			resp.Diagnostics.AddError("Cannot read the service to update it", err.Error())
			return
		}
		s.Metadata.Labels, s.Metadata.Annotations = want.Metadata.Labels, want.Metadata.Annotations
		s.Spec = want.Spec
		err := cli.Update(ctx, &s)
		if err == nil {
			break
		}
		if !api.IsConflict(err) || attempt >= 5 {
			resp.Diagnostics.AddError("Cannot update the service", err.Error())
			return
		}
	}
	flattenService(&s, &m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *serviceResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m serviceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	cli := r.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s := &api.Service{Metadata: api.ObjectMeta{Namespace: m.Namespace.ValueString(), Name: m.Name.ValueString()}}
	if err := deleteAndWait(ctx, cli, s); err != nil {
		resp.Diagnostics.AddError("Cannot delete the service", err.Error())
	}
}

func (r *serviceResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	ns, name, err := splitID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), ns+"/"+name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("namespace"), ns)...)
}
