package framework

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// pollInterval is how often waits look at the control plane again.
const pollInterval = 250 * time.Millisecond

// clientHolder gives resources and data sources the provider's data.
type clientHolder struct {
	data *ProviderData
}

func (h *clientHolder) setData(pd any, diags *diag.Diagnostics) {
	if pd == nil {
		return
	}
	d, ok := pd.(*ProviderData)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("expected *framework.ProviderData, got %T: this is a bug in the provider", pd))
		return
	}
	h.data = d
}

func (h *clientHolder) configureResource(req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	h.setData(req.ProviderData, &resp.Diagnostics)
}

func (h *clientHolder) configureDataSource(req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	h.setData(req.ProviderData, &resp.Diagnostics)
}

// configPending reports whether the provider's configuration is known only
// after apply: it is built from a resource that changes in the same run,
// such as berth_cluster's endpoints while the control plane moves to other
// hosts. A refresh then keeps the prior state (the objects cannot be read
// at endpoints that do not serve yet); they are read again once the
// configuration is known.
func (h *clientHolder) configPending() bool { return h.data != nil && h.data.unknown != "" }

// client returns the control-plane client or adds a diagnostic saying why
// there is none and what to do.
func (h *clientHolder) client(ctx context.Context, diags *diag.Diagnostics) *client.Client {
	if h.data == nil {
		diags.AddError("Provider not configured", "The berth provider was not configured before use: this is a bug in the provider.")
		return nil
	}
	cli, err := h.data.Client(ctx)
	if err != nil {
		diags.AddError("Cannot reach the berth control plane",
			err.Error()+"\n\nConfigure the provider with endpoints, ca_certificate, client_certificate and client_key, or config_path (or "+EnvConfigPath+").")
		return nil
	}
	return cli
}

// splitID parses an import ID "namespace/name" (or "name" in the default
// namespace).
func splitID(id string) (string, string, error) {
	ns, name, ok := strings.Cut(id, "/")
	if !ok {
		ns, name = api.DefaultNamespace, id
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("import ID %q must be namespace/name, for example default/web", id)
	}
	return ns, name, nil
}

func objectID(m *api.ObjectMeta) types.String {
	return types.StringValue(m.Namespace + "/" + m.Name)
}

// sleep waits d or until ctx ends, reporting whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitGone polls until the object no longer exists.
func waitGone(ctx context.Context, cli *client.Client, obj api.Object) error {
	m := obj.GetMeta()
	for {
		err := cli.Get(ctx, m.Namespace, m.Name, obj)
		if api.IsNotFound(err) {
			return nil
		}
		if !sleep(ctx, pollInterval) {
			return fmt.Errorf("wait for %s %s/%s to be deleted: %w", api.KindOf(obj).Kind, m.Namespace, m.Name, ctx.Err())
		}
	}
}
