package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/berth-io/berth/provider/cluster"
)

// privateHostsKey is the private-state key under which cluster and
// node-pool resources keep the engine's per-host records (effective SSH
// settings with keys, role, installed digest, configuration hash), so a
// host that left the configuration can still be drained and wiped.
const privateHostsKey = "engine_hosts"

// hostModel is one host of a control_plane_hosts or hosts map.
type hostModel struct {
	Address    types.String   `tfsdk:"address"`
	Port       types.Int64    `tfsdk:"port"`
	User       types.String   `tfsdk:"user"`
	PrivateKey types.String   `tfsdk:"private_key"`
	HostKey    types.String   `tfsdk:"host_key"`
	InternalIP types.String   `tfsdk:"internal_ip"`
	Labels     types.Map      `tfsdk:"labels"`
	JumpHost   *jumpHostModel `tfsdk:"jump_host"`
}

type jumpHostModel struct {
	Address    types.String `tfsdk:"address"`
	Port       types.Int64  `tfsdk:"port"`
	User       types.String `tfsdk:"user"`
	PrivateKey types.String `tfsdk:"private_key"`
	HostKey    types.String `tfsdk:"host_key"`
}

// hostStatusModel is what the engine recorded about one host.
type hostStatusModel struct {
	Address    types.String `tfsdk:"address"`
	Port       types.Int64  `tfsdk:"port"`
	User       types.String `tfsdk:"user"`
	HostKey    types.String `tfsdk:"host_key"`
	Role       types.String `tfsdk:"role"`
	InternalIP types.String `tfsdk:"internal_ip"`
	Digest     types.String `tfsdk:"digest"`
}

var hostStatusAttrTypes = map[string]attr.Type{
	"address": types.StringType, "port": types.Int64Type, "user": types.StringType, "host_key": types.StringType,
	"role": types.StringType, "internal_ip": types.StringType, "digest": types.StringType,
}

func hostsAttribute(what string, required bool) schema.MapNestedAttribute {
	jump := map[string]schema.Attribute{
		"address":     schema.StringAttribute{Required: true, MarkdownDescription: "Address (host name or IP) of the jump host."},
		"port":        schema.Int64Attribute{Optional: true, MarkdownDescription: fmt.Sprintf("SSH port of the jump host. Default `%d`.", DefaultSSHPort)},
		"user":        schema.StringAttribute{Optional: true, MarkdownDescription: "User on the jump host. Default: the host's user."},
		"private_key": schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "PEM private key for the jump host. Default: the host's key."},
		"host_key":    schema.StringAttribute{Optional: true, MarkdownDescription: "Pinned SSH host key of the jump host (`authorized_keys` line or `SHA256:` fingerprint); when empty the key seen first is enforced afterwards."},
	}
	return schema.MapNestedAttribute{
		Required: required,
		Optional: !required,
		MarkdownDescription: fmt.Sprintf("The %s, keyed by a stable host name (lower-case letters, digits and `-`; it is also the node name). "+
			"Adding a key joins a host, removing one drains, removes and wipes it. Settings left out come from the provider's `ssh` block.", what),
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"address": schema.StringAttribute{Required: true, MarkdownDescription: "Address (host name or IP) SSH connects to."},
			"port":    schema.Int64Attribute{Optional: true, MarkdownDescription: fmt.Sprintf("SSH port. Default: the provider's `ssh.port`, else `%d`.", DefaultSSHPort)},
			"user":    schema.StringAttribute{Optional: true, MarkdownDescription: fmt.Sprintf("SSH user. Default: the provider's `ssh.user`, else `%s`.", DefaultSSHUser)},
			"private_key": schema.StringAttribute{Optional: true, Sensitive: true,
				MarkdownDescription: "PEM private key. Default: the provider's `ssh.private_key`, else the SSH agent."},
			"host_key": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Pinned SSH host key (`authorized_keys` line or `SHA256:` fingerprint). When empty, the key seen at first contact is recorded in state (`host_status`) and enforced afterwards; a different key fails closed naming both fingerprints."},
			"internal_ip": schema.StringAttribute{Optional: true,
				MarkdownDescription: "IP address other hosts reach this host's API and agent at. Default: `address`."},
			"labels": schema.MapAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Labels added to the host's Node."},
			"jump_host": schema.SingleNestedAttribute{Optional: true, Attributes: jump,
				MarkdownDescription: "A bastion this host is reached through. Default: the provider's `ssh.jump_host`."},
		}},
	}
}

func hostStatusAttribute() schema.MapAttribute {
	return schema.MapAttribute{
		Computed:    true,
		ElementType: types.ObjectType{AttrTypes: hostStatusAttrTypes},
		MarkdownDescription: "What the engine recorded about each host it installed, keyed by host name: effective SSH `address`, `port`, " +
			"`user` and `host_key` (the pinned key, or the one seen at first contact), `role`, `internal_ip` and the installed image `digest`. " +
			"Hosts that left the configuration stay here until they have been drained and wiped.",
	}
}

// expandHosts turns a configured host map into engine hosts, in name order,
// with the provider's SSH defaults filled in. It reports whether every value
// was known.
func expandHosts(ctx context.Context, m types.Map, d SSHDefaults, diags *diag.Diagnostics) ([]cluster.Host, bool) {
	if m.IsUnknown() {
		return nil, false
	}
	hosts := map[string]hostModel{}
	if !m.IsNull() {
		diags.Append(m.ElementsAs(ctx, &hosts, false)...)
		if diags.HasError() {
			return nil, false
		}
	}
	known := d.Known
	str := func(v types.String, def string) string {
		if v.IsUnknown() {
			known = false
		}
		if v.IsNull() || v.IsUnknown() || v.ValueString() == "" {
			return def
		}
		return v.ValueString()
	}
	port := func(v types.Int64, def int) int {
		if v.IsUnknown() {
			known = false
		}
		if v.IsNull() || v.IsUnknown() || v.ValueInt64() == 0 {
			return def
		}
		return int(v.ValueInt64())
	}
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []cluster.Host
	for _, n := range names {
		hm := hosts[n]
		key := str(hm.PrivateKey, d.PrivateKey)
		cfg := cluster.SSHConfig{
			Name: n, Address: str(hm.Address, ""), Port: port(hm.Port, d.Port), User: str(hm.User, d.User),
			PrivateKey: []byte(key), UseAgent: key == "", HostKey: strings.TrimSpace(str(hm.HostKey, "")),
		}
		switch {
		case hm.JumpHost != nil:
			jk := str(hm.JumpHost.PrivateKey, key)
			cfg.Jump = &cluster.SSHConfig{Name: n + "-jump", Address: str(hm.JumpHost.Address, ""), Port: port(hm.JumpHost.Port, DefaultSSHPort),
				User: str(hm.JumpHost.User, cfg.User), PrivateKey: []byte(jk), UseAgent: jk == "", HostKey: str(hm.JumpHost.HostKey, "")}
		case d.JumpHost != nil:
			jk := d.JumpHost.PrivateKey
			if jk == "" {
				jk = key
			}
			addr, p := splitHostPort(d.JumpHost.Host, d.JumpHost.Port)
			cfg.Jump = &cluster.SSHConfig{Name: n + "-jump", Address: addr, Port: p, User: d.JumpHost.User, PrivateKey: []byte(jk), UseAgent: jk == ""}
		}
		if len(cfg.PrivateKey) == 0 {
			cfg.PrivateKey = nil
		}
		labels := map[string]string{}
		if hm.Labels.IsUnknown() {
			known = false
		} else if !hm.Labels.IsNull() {
			diags.Append(hm.Labels.ElementsAs(ctx, &labels, false)...)
		}
		out = append(out, cluster.Host{Name: n, SSH: cfg, InternalIP: str(hm.InternalIP, ""), Labels: labels})
	}
	return out, known
}

// splitHostPort splits "host:port", falling back to def for the port.
func splitHostPort(s string, def int) (string, int) {
	if i := strings.LastIndexByte(s, ':'); i > 0 && !strings.Contains(s[i+1:], "]") {
		var p int
		if _, err := fmt.Sscanf(s[i+1:], "%d", &p); err == nil && p > 0 {
			return strings.Trim(s[:i], "[]"), p
		}
	}
	return s, def
}

// hostStatus renders the engine's host records for the host_status
// attribute (no private keys).
func hostStatus(hosts map[string]cluster.HostState) types.Map {
	elems := map[string]attr.Value{}
	for n, h := range hosts {
		port := h.SSH.Port
		if port == 0 {
			port = cluster.DefaultSSHPort
		}
		user := h.SSH.User
		if user == "" {
			user = cluster.DefaultSSHUser
		}
		elems[n] = types.ObjectValueMust(hostStatusAttrTypes, map[string]attr.Value{
			"address": types.StringValue(h.SSH.Address), "port": types.Int64Value(int64(port)), "user": types.StringValue(user),
			"host_key": types.StringValue(h.SSH.HostKey), "role": types.StringValue(h.Role),
			"internal_ip": types.StringValue(h.InternalIP), "digest": types.StringValue(h.Digest),
		})
	}
	return types.MapValueMust(types.ObjectType{AttrTypes: hostStatusAttrTypes}, elems)
}

// privateGetter and privateSetter are the parts of the framework's private
// state the resources use.
type privateGetter interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
}

type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

// loadHosts reads the engine's host records from private state.
func loadHosts(ctx context.Context, p privateGetter, diags *diag.Diagnostics) map[string]cluster.HostState {
	hosts := map[string]cluster.HostState{}
	if p == nil {
		return hosts
	}
	b, d := p.GetKey(ctx, privateHostsKey)
	diags.Append(d...)
	if len(b) == 0 || d.HasError() {
		return hosts
	}
	if err := json.Unmarshal(b, &hosts); err != nil {
		diags.AddError("Unreadable host records in state",
			fmt.Sprintf("The provider's private record of installed hosts cannot be read: %v.\n\nThis is a bug in the provider; the hosts themselves are unaffected.", err))
	}
	return hosts
}

// saveHosts writes the engine's host records to private state.
func saveHosts(ctx context.Context, p privateSetter, hosts map[string]cluster.HostState, diags *diag.Diagnostics) {
	if hosts == nil {
		hosts = map[string]cluster.HostState{}
	}
	b, err := json.Marshal(hosts)
	if err != nil {
		diags.AddError("Cannot record hosts in state", err.Error())
		return
	}
	diags.Append(p.SetKey(ctx, privateHostsKey, b)...)
}

// engineOptions are the engine options every resource uses: progress at
// INFO through tflog (host, step, elapsed), trust-on-first-use host keys
// (keys recorded in state are always enforced).
func engineOptions(ctx context.Context, resource string) cluster.Options {
	return cluster.Options{
		HostKeys: cluster.NewMemoryHostKeyStore(),
		Progress: func(e cluster.Event) {
			tflog.Info(ctx, fmt.Sprintf("%s: %s: %s", resource, hostLabel(e.Host), e.Step), map[string]any{
				"host": e.Host, "step": e.Step, "elapsed": e.Elapsed.Round(time.Second).String(),
			})
		},
	}
}

func hostLabel(h string) string {
	if h == "" {
		return "cluster"
	}
	return h
}

// durationOf parses an optional duration attribute.
func durationOf(v types.String, attrName string, diags *diag.Diagnostics) time.Duration {
	if v.IsNull() || v.IsUnknown() || v.ValueString() == "" {
		return 0
	}
	d, err := time.ParseDuration(v.ValueString())
	if err != nil || d <= 0 {
		diags.AddError("Invalid duration", fmt.Sprintf("%s = %q is not a positive duration such as \"5m\" or \"90s\".", attrName, v.ValueString()))
		return 0
	}
	return d
}

// engineError adds an engine failure as a diagnostic: what failed, the
// engine's words (host, cause, last log lines) and what to do.
func engineError(diags *diag.Diagnostics, summary string, err error) {
	diags.AddError(summary, err.Error()+
		"\n\nThe state records every host changed so far. Fix the cause named above (the host's address, SSH access, "+
		"or the node image) and run apply again: the engine resumes where it stopped.")
}
