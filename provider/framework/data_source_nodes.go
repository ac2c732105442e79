package framework

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

var _ datasource.DataSourceWithConfigure = (*nodesDataSource)(nil)

// NewNodesDataSource returns the berth_nodes data source: the cluster's
// nodes as their agents report them.
func NewNodesDataSource() datasource.DataSource { return &nodesDataSource{} }

type nodesDataSource struct {
	clientHolder
}

func (d *nodesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nodes"
}

func (d *nodesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The cluster's nodes, sorted by name, as their agents report them: readiness, addresses, pod CIDR, labels and the node image they run.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "Always `nodes`."},
			"selector": schema.MapAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Keeps only nodes carrying all these labels."},
			"nodes": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The nodes.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":              schema.StringAttribute{Computed: true, MarkdownDescription: "Name of the node."},
					"ready":             schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the node's agent heartbeats and is healthy."},
					"addresses":         schema.ListAttribute{ElementType: types.StringType, Computed: true, MarkdownDescription: "Addresses of the node."},
					"internal_ip":       schema.StringAttribute{Computed: true, MarkdownDescription: "The address that carries overlay traffic."},
					"pod_cidr":          schema.StringAttribute{Computed: true, MarkdownDescription: "The node's slice of the pod network."},
					"labels":            schema.MapAttribute{ElementType: types.StringType, Computed: true, MarkdownDescription: "Labels of the node."},
					"node_image_digest": schema.StringAttribute{Computed: true, MarkdownDescription: "Digest of the node image the host runs."},
					"version":           schema.StringAttribute{Computed: true, MarkdownDescription: "berth version of the node's agent."},
					"unschedulable":     schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the node is cordoned."},
				}},
			},
		},
	}
}

func (d *nodesDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.configureDataSource(req, resp)
}

func (d *nodesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m nodesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	cli := d.client(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var list api.NodeList
	if err := cli.List(ctx, &list, client.ListOptions{Labels: stringMap(m.Selector)}); err != nil {
		resp.Diagnostics.AddError("Cannot list the nodes", err.Error())
		return
	}
	m.ID = types.StringValue("nodes")
	m.Nodes = []nodeModel{}
	for i := range list.Items {
		m.Nodes = append(m.Nodes, flattenNode(&list.Items[i]))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func flattenNode(n *api.Node) nodeModel {
	var addrs []string
	for _, a := range n.Status.Addresses {
		addrs = append(addrs, a.Address)
	}
	labels := mapValue(n.Metadata.Labels, types.MapNull(types.StringType))
	if labels.IsNull() {
		labels = mapValue(nil, types.MapValueMust(types.StringType, nil))
	}
	addrList := listValue(addrs, types.ListNull(types.StringType))
	if addrList.IsNull() {
		addrList = listValue(nil, types.ListValueMust(types.StringType, nil))
	}
	return nodeModel{
		Name:            types.StringValue(n.Metadata.Name),
		Ready:           types.BoolValue(api.IsNodeReady(n)),
		Addresses:       addrList,
		InternalIP:      types.StringValue(api.NodeInternalAddress(n)),
		PodCIDR:         types.StringValue(n.Spec.PodCIDR),
		Labels:          labels,
		NodeImageDigest: types.StringValue(n.Status.NodeInfo.NodeImageDigest),
		Version:         types.StringValue(n.Status.NodeInfo.BerthVersion),
		Unschedulable:   types.BoolValue(n.Spec.Unschedulable),
	}
}
