package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/berth-io/berth/control/client"
)

// ProviderAddress is the provider's registry source address; Terraform
// configurations name it in required_providers.
const ProviderAddress = "registry.terraform.io/berth-io/berth"

// EnvConfigPath names the environment variable that points at a client
// configuration file (admin.json) when config_path is not set.
const EnvConfigPath = "BERTH_CONFIG"

// DefaultSSHPort is the SSH port hosts are reached on unless configured.
const DefaultSSHPort = 22

// DefaultSSHUser is the SSH user hosts are reached as unless configured.
const DefaultSSHUser = "root"

// requestTimeout bounds every single request the provider sends; waits for
// readiness and rollouts are bounded by the resources' timeouts instead.
const requestTimeout = 30 * time.Second

var _ provider.Provider = (*berthProvider)(nil)

// New returns a constructor of the provider at the given version, as
// providerserver.NewProtocol6 and the Pulumi bridge expect.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &berthProvider{version: version} }
}

type berthProvider struct {
	version string
}

func (p *berthProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "berth"
	resp.Version = p.version
}

func (p *berthProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = providerSchema()
}

func sshHostAttributes(what string) map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"host": schema.StringAttribute{
			Optional:            true,
			MarkdownDescription: fmt.Sprintf("Address (host name or IP, optionally `host:port`) of the %s.", what),
		},
		"user": schema.StringAttribute{
			Optional:            true,
			MarkdownDescription: fmt.Sprintf("User to log in to the %s as. Default `%s`.", what, DefaultSSHUser),
		},
		"private_key": schema.StringAttribute{
			Optional:            true,
			Sensitive:           true,
			MarkdownDescription: fmt.Sprintf("PEM private key for the %s; without it the SSH agent (`SSH_AUTH_SOCK`) is used.", what),
		},
		"port": schema.Int64Attribute{
			Optional:            true,
			MarkdownDescription: fmt.Sprintf("SSH port of the %s. Default `%d`.", what, DefaultSSHPort),
		},
	}
}

func providerSchema() schema.Schema {
	sshAttrs := sshHostAttributes("hosts")
	delete(sshAttrs, "host")
	return schema.Schema{
		MarkdownDescription: "The berth provider installs berth clusters on SSH-reachable hosts and manages their " +
			"workloads (pods, deployments, services) through the control-plane API.\n\n" +
			"Control-plane credentials come from `endpoints` with `ca_certificate`, `client_certificate` and " +
			"`client_key`, or from a client configuration file (`config_path`, or the `" + EnvConfigPath + "` " +
			"environment variable) such as the `admin.json` that `berth control --dev` writes. Every value may be " +
			"unknown while planning (for example taken from a `berth_cluster` created in the same apply): the " +
			"provider connects only when a resource needs the control plane.",
		Attributes: map[string]schema.Attribute{
			"endpoints": schema.ListAttribute{
				ElementType:         types.StringType,
				Optional:            true,
				MarkdownDescription: "HTTPS base URLs of control-plane hosts, for example `https://198.18.0.10:6443`. The client fails over between them and follows the list the control plane publishes.",
			},
			"ca_certificate": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "PEM certificate of the cluster CA that signs the control plane's serving certificates.",
			},
			"client_certificate": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "PEM client certificate signed by the cluster CA (an admin identity).",
			},
			"client_key": schema.StringAttribute{
				Optional:            true,
				Sensitive:           true,
				MarkdownDescription: "PEM private key of `client_certificate`.",
			},
			"config_path": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Path of a client configuration file (JSON with `endpoints`, `caCertificate`, " +
					"`clientCertificate`, `clientKey`), as `berth control --dev` writes it to `admin.json`. Used when " +
					"`endpoints` is not set. Default: the `" + EnvConfigPath + "` environment variable.",
			},
		},
		Blocks: map[string]schema.Block{
			"ssh": schema.SingleNestedBlock{
				MarkdownDescription: "SSH defaults for the hosts that cluster and node-pool resources provision; each host may override them.",
				Attributes:          sshAttrs,
				Blocks: map[string]schema.Block{
					"jump_host": schema.SingleNestedBlock{
						MarkdownDescription: "A bastion every host connection goes through.",
						Attributes:          sshHostAttributes("jump host"),
					},
				},
			},
		},
	}
}

// providerModel is the provider's configuration.
type providerModel struct {
	Endpoints         types.List   `tfsdk:"endpoints"`
	CACertificate     types.String `tfsdk:"ca_certificate"`
	ClientCertificate types.String `tfsdk:"client_certificate"`
	ClientKey         types.String `tfsdk:"client_key"`
	ConfigPath        types.String `tfsdk:"config_path"`
	SSH               *sshModel    `tfsdk:"ssh"`
}

type sshModel struct {
	User       types.String `tfsdk:"user"`
	PrivateKey types.String `tfsdk:"private_key"`
	Port       types.Int64  `tfsdk:"port"`
	JumpHost   *jumpModel   `tfsdk:"jump_host"`
}

type jumpModel struct {
	Host       types.String `tfsdk:"host"`
	User       types.String `tfsdk:"user"`
	PrivateKey types.String `tfsdk:"private_key"`
	Port       types.Int64  `tfsdk:"port"`
}

// SSHDefaults are the provider-level SSH settings that cluster and
// node-pool resources start from for every host. Values left unknown at
// plan time are empty; Known says whether the whole block was known.
type SSHDefaults struct {
	// User to log in as; DefaultSSHUser when empty.
	User string
	// PrivateKey is a PEM key; empty means use the SSH agent. Never log it.
	PrivateKey string
	// Port is the SSH port; DefaultSSHPort when zero.
	Port int
	// JumpHost, when set, is the bastion every connection goes through.
	JumpHost *SSHJumpHost
	// Known is false when part of the block was unknown while planning.
	Known bool
}

// SSHJumpHost is a bastion host.
type SSHJumpHost struct {
	// Host is host or host:port.
	Host string
	// User, PrivateKey and Port as for SSHDefaults.
	User       string
	PrivateKey string
	Port       int
}

// ProviderData is what Configure hands to resources and data sources: the
// way to a control-plane client (built on first use, so a provider whose
// configuration is unknown while planning still plans) and the SSH defaults.
type ProviderData struct {
	// Version of the provider, sent as the client's user agent.
	Version string
	// SSH are the provider's SSH defaults for hosts.
	SSH SSHDefaults

	// unknown names the first configuration value that was unknown.
	unknown string
	cfg     *client.Config
	cfgErr  error

	once   sync.Once
	client *client.Client
	err    error
}

// ErrConfigUnknown is returned by Client while the provider's configuration
// is not known yet (during a plan that creates the cluster it points at).
var ErrConfigUnknown = errors.New("the provider configuration is not known yet")

// Client returns the control-plane client, building it on first use.
func (d *ProviderData) Client(ctx context.Context) (*client.Client, error) {
	if d.unknown != "" {
		return nil, fmt.Errorf("%w: %s depends on values known only after apply", ErrConfigUnknown, d.unknown)
	}
	if d.cfgErr != nil {
		return nil, d.cfgErr
	}
	d.once.Do(func() {
		tflog.Debug(ctx, "building the control-plane client", map[string]any{"endpoints": d.cfg.Endpoints})
		d.client, d.err = client.New(*d.cfg, client.WithTimeout(requestTimeout), client.WithUserAgent("terraform-provider-berth/"+d.Version))
		if d.err != nil {
			d.err = fmt.Errorf("build the control-plane client: %w", d.err)
		}
	})
	return d.client, d.err
}

// HasClientConfig reports whether the provider could reach a control
// plane (its configuration is known and complete).
func (d *ProviderData) HasClientConfig() bool { return d.unknown == "" && d.cfgErr == nil }

func (p *berthProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	data := &ProviderData{Version: p.version}
	data.SSH = sshDefaults(m.SSH)
	data.unknown, data.cfg, data.cfgErr = clientConfig(ctx, m)
	if data.unknown != "" {
		tflog.Info(ctx, "provider configuration is not known yet; the control plane is contacted once it is", map[string]any{"unknown": data.unknown})
	}
	if data.cfgErr != nil && data.unknown == "" && m.ConfigPath.ValueString() != "" {
		// An explicit but unreadable file is a mistake to report now.
		resp.Diagnostics.AddAttributeError(path.Root("config_path"), "Cannot read the client configuration", data.cfgErr.Error())
		return
	}
	resp.ResourceData = data
	resp.DataSourceData = data
}

func sshDefaults(m *sshModel) SSHDefaults {
	d := SSHDefaults{User: DefaultSSHUser, Port: DefaultSSHPort, Known: true}
	if m == nil {
		return d
	}
	str := func(v types.String, def string) string {
		if v.IsUnknown() {
			d.Known = false
		}
		if v.IsNull() || v.IsUnknown() || v.ValueString() == "" {
			return def
		}
		return v.ValueString()
	}
	port := func(v types.Int64) int {
		if v.IsUnknown() {
			d.Known = false
		}
		if v.IsNull() || v.IsUnknown() || v.ValueInt64() == 0 {
			return DefaultSSHPort
		}
		return int(v.ValueInt64())
	}
	d.User = str(m.User, DefaultSSHUser)
	d.PrivateKey = str(m.PrivateKey, "")
	d.Port = port(m.Port)
	if j := m.JumpHost; j != nil && !j.Host.IsNull() {
		d.JumpHost = &SSHJumpHost{Host: str(j.Host, ""), User: str(j.User, d.User), PrivateKey: str(j.PrivateKey, d.PrivateKey), Port: port(j.Port)}
	}
	return d
}

// clientConfig resolves the client configuration: the attributes, else
// config_path, else $BERTH_CONFIG. It returns the name of the first
// unknown value, or the configuration, or why there is none.
func clientConfig(ctx context.Context, m providerModel) (string, *client.Config, error) {
	for name, v := range map[string]interface{ IsUnknown() bool }{
		"endpoints": m.Endpoints, "ca_certificate": m.CACertificate, "client_certificate": m.ClientCertificate,
		"client_key": m.ClientKey, "config_path": m.ConfigPath,
	} {
		if v.IsUnknown() {
			return name, nil, nil
		}
	}
	if !m.Endpoints.IsNull() {
		var eps []types.String
		if diags := m.Endpoints.ElementsAs(ctx, &eps, false); diags.HasError() {
			return "", nil, fmt.Errorf("read endpoints: %v", diags)
		}
		cfg := client.Config{CACertificate: m.CACertificate.ValueString(), ClientCertificate: m.ClientCertificate.ValueString(), ClientKey: m.ClientKey.ValueString()}
		for _, e := range eps {
			if e.IsUnknown() {
				return "endpoints", nil, nil
			}
			cfg.Endpoints = append(cfg.Endpoints, e.ValueString())
		}
		if len(cfg.Endpoints) == 0 || cfg.CACertificate == "" || cfg.ClientCertificate == "" || cfg.ClientKey == "" {
			return "", nil, errors.New("incomplete provider configuration: with endpoints set, ca_certificate, client_certificate and client_key are required too")
		}
		return "", &cfg, nil
	}
	p := m.ConfigPath.ValueString()
	if p == "" {
		p = os.Getenv(EnvConfigPath)
	}
	if p == "" {
		return "", nil, errors.New("no control-plane credentials: set endpoints, ca_certificate, client_certificate and client_key, or config_path (or " + EnvConfigPath + ") to a client configuration such as admin.json")
	}
	cfg, err := client.LoadConfig(p)
	if err != nil {
		return "", nil, err
	}
	return "", &cfg, nil
}

func (p *berthProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{NewPodResource, NewDeploymentResource, NewServiceResource, NewNodeImageResource, NewClusterResource, NewNodePoolResource}
}

func (p *berthProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{NewNodesDataSource, NewServiceEndpointsDataSource}
}
