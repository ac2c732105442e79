package framework

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/berth-io/berth/control/api"
)

var _ datasource.DataSourceWithConfigure = (*serviceEndpointsDataSource)(nil)

// NewServiceEndpointsDataSource returns the berth_service_endpoints data
// source: the ready pod addresses behind a service.
func NewServiceEndpointsDataSource() datasource.DataSource { return &serviceEndpointsDataSource{} }

type serviceEndpointsDataSource struct {
	clientHolder
}

func (d *serviceEndpointsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service_endpoints"
}

func (d *serviceEndpointsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The Ready endpoints of a service, as the endpoints controller keeps them: only these receive the service's traffic.",
		Attributes: map[string]schema.Attribute{
			"id":        schema.StringAttribute{Computed: true, MarkdownDescription: "`namespace/name` of the service."},
			"name":      schema.StringAttribute{Required: true, MarkdownDescription: "Name of the service."},
			"namespace": schema.StringAttribute{Optional: true, MarkdownDescription: "Namespace of the service." + defaultDoc(api.DefaultNamespace)},
			"addresses": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Ready pods behind the service, sorted by IP.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"ip":        schema.StringAttribute{Computed: true, MarkdownDescription: "IP of the pod."},
					"node_name": schema.StringAttribute{Computed: true, MarkdownDescription: "Node the pod runs on."},
					"pod_name":  schema.StringAttribute{Computed: true, MarkdownDescription: "Name of the pod."},
				}},
			},
			"ports": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Resolved target ports of the pods.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":     schema.StringAttribute{Computed: true, MarkdownDescription: "Name of the service port."},
					"port":     schema.Int64Attribute{Computed: true, MarkdownDescription: "Port number on the pods."},
					"protocol": schema.StringAttribute{Computed: true, MarkdownDescription: "Protocol of the port."},
				}},
			},
		},
	}
}

func (d *serviceEndpointsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.configureDataSource(req, resp)
}

func (d *serviceEndpointsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m serviceEndpointsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	cli := d.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ns := m.Namespace.ValueString()
	if ns == "" {
		ns = api.DefaultNamespace
	}
	var ep api.Endpoints
	if err := cli.Get(ctx, ns, m.Name.ValueString(), &ep); err != nil {
		if !api.IsNotFound(err) {
			resp.Diagnostics.AddError("Cannot read the service's endpoints", err.Error())
			return
		}
		// No endpoints object yet: the service has no ready pods.
		var svc api.Service
		if err := cli.Get(ctx, ns, m.Name.ValueString(), &svc); err != nil {
			resp.Diagnostics.AddError("Cannot read the service", err.Error())
			return
		}
	}
	m.ID = types.StringValue(ns + "/" + m.Name.ValueString())
	m.Addresses, m.Ports = flattenEndpoints(&ep)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func flattenEndpoints(ep *api.Endpoints) ([]endpointAddressModel, []endpointPortModel) {
	addrs := []endpointAddressModel{}
	ports := []endpointPortModel{}
	seenPort := map[string]bool{}
	var ips []string
	byIP := map[string]api.EndpointAddress{}
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			if _, ok := byIP[a.IP]; !ok {
				ips = append(ips, a.IP)
			}
			byIP[a.IP] = a
		}
		for _, p := range s.Ports {
			k := p.Name + "/" + string(p.Protocol)
			if seenPort[k] {
				continue
			}
			seenPort[k] = true
			ports = append(ports, endpointPortModel{Name: types.StringValue(p.Name), Port: types.Int64Value(int64(p.Port)), Protocol: types.StringValue(string(p.Protocol))})
		}
	}
	for _, ip := range sortedStrings(ips) {
		a := byIP[ip]
		addrs = append(addrs, endpointAddressModel{IP: types.StringValue(a.IP), NodeName: types.StringValue(a.NodeName), PodName: types.StringValue(a.PodName)})
	}
	return addrs, ports
}
