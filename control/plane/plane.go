package plane

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/controller"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/server"
	"github.com/berth-io/berth/control/store"
)

// StartTimeout bounds the start-up of all components together.
const StartTimeout = 2 * time.Minute

// Run runs a control plane until ctx ends: it loads (or, in Dev mode,
// creates) the credentials, starts etcd, the store (bootstrapping the
// cluster on first start), the API server and the controllers in that
// order, and stops them in reverse when ctx ends or one of them fails. It
// returns nil after a stop caused by ctx.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	ca, err := loadOrCreateCA(cfg)
	if err != nil {
		return fmt.Errorf("control plane %s: %w", cfg.Name, err)
	}
	servingPair, serving, err := loadOrIssueServing(cfg, ca, time.Now())
	if err != nil {
		return fmt.Errorf("control plane %s: serving certificate: %w", cfg.Name, err)
	}
	etcdC := newEtcdComponent(cfg, ca, servingPair, logger)
	storeC := &storeComponent{cfg: cfg, etcd: etcdC, log: logger}
	serverC := &serverComponent{cfg: cfg, ca: ca, serving: serving, store: storeC, log: logger}
	m := &manager{log: logger, components: []Component{etcdC, storeC, serverC}}
	if !cfg.DisableControllers {
		if cfg.RunControllers == nil {
			cfg.RunControllers = defaultControllers(cfg, logger)
		}
		m.components = append(m.components, &controllersComponent{cfg: cfg, ca: ca, server: serverC, log: logger})
	}
	startCtx, cancel := context.WithTimeout(ctx, StartTimeout)
	err = m.start(startCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("control plane %s: %w", cfg.Name, err)
	}
	if cfg.Dev {
		path, err := writeAdminConfig(cfg, ca, serverC.local, time.Now())
		if err != nil {
			return errors.Join(fmt.Errorf("control plane %s: %w", cfg.Name, err), m.stop())
		}
		logger.Info("wrote the admin client config", "path", path)
	}
	logger.Info("control plane running", "name", cfg.Name, "api", serverC.advertise)
	runErr := m.wait(ctx)
	stopErr := m.stop()
	if runErr != nil {
		return errors.Join(fmt.Errorf("control plane %s: %w", cfg.Name, runErr), stopErr)
	}
	if stopErr != nil {
		return fmt.Errorf("control plane %s: %w", cfg.Name, stopErr)
	}
	return nil
}

// defaultControllers runs control/controller's loops under leader
// election, as this host's identity.
func defaultControllers(cfg Config, logger *slog.Logger) func(context.Context, client.Config) error {
	le := cfg.LeaderElection
	return func(ctx context.Context, cc client.Config) error {
		cli, err := client.New(cc)
		if err != nil {
			return fmt.Errorf("build the controllers' client: %w", err)
		}
		defer cli.Close()
		return controller.Run(ctx, cli, controller.Options{
			Identity:           cfg.Name,
			LeaseDuration:      time.Duration(le.LeaseDurationSeconds) * time.Second,
			RenewDeadline:      time.Duration(le.RenewDeadlineSeconds) * time.Second,
			RetryPeriod:        time.Duration(le.RetryPeriodSeconds) * time.Second,
			NodeGracePeriod:    time.Duration(cfg.NodeLifecycle.GracePeriodSeconds) * time.Second,
			PodEvictionTimeout: time.Duration(cfg.NodeLifecycle.PodEvictionTimeoutSeconds) * time.Second,
			Logger:             logger.With("component", "controllers"),
		})
	}
}

// storeComponent makes the typed store over etcd and bootstraps the
// cluster: the cluster ID (created once, never replaced) and the default
// and berth-system namespaces.
type storeComponent struct {
	cfg   Config
	etcd  *etcdComponent
	log   *slog.Logger
	store *store.Store
	// clusterID is the cluster's ID after Start.
	clusterID string
}

func (c *storeComponent) Name() string                   { return "store" }
func (c *storeComponent) Failed() <-chan error           { return nil }
func (c *storeComponent) Init(ctx context.Context) error { return nil }
func (c *storeComponent) Stop() error                    { return nil }

func (c *storeComponent) Start(ctx context.Context) error {
	c.store = store.New(c.etcd.client, store.Options{Prefix: c.cfg.Etcd.Prefix})
	id, err := bootstrap(ctx, c.store)
	if err != nil {
		return err
	}
	c.clusterID = id
	c.log.Info("cluster bootstrapped", "clusterID", id)
	return nil
}

// bootstrap creates what every cluster has, idempotently, and returns the
// cluster ID.
func bootstrap(ctx context.Context, st *store.Store) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	if _, err := st.CreateAux(ctx, server.AuxClusterID, hex.EncodeToString(b[:]), 0); err != nil {
		return "", fmt.Errorf("bootstrap: create cluster id: %w", err)
	}
	var id string
	found, err := st.GetAux(ctx, server.AuxClusterID, &id)
	if err != nil || !found || id == "" {
		return "", fmt.Errorf("bootstrap: read cluster id (found %v): %w", found, err)
	}
	for _, name := range []string{api.DefaultNamespace, api.SystemNamespace} {
		ns := &api.Namespace{Metadata: api.ObjectMeta{Name: name}}
		api.Default(ns)
		if err := st.Create(ctx, ns); err != nil && !api.IsAlreadyExists(err) {
			return "", fmt.Errorf("bootstrap: create namespace %s: %w", name, err)
		}
	}
	return id, nil
}

// serverComponent serves the API on the listen address.
type serverComponent struct {
	cfg     Config
	ca      *pki.CA
	serving tls.Certificate
	store   *storeComponent
	log     *slog.Logger

	listener  net.Listener
	advertise string // the URL clients use
	local     string // the URL this host's own components use
	stop      context.CancelFunc
	done      chan error
	failed    chan error
	once      sync.Once
}

func (c *serverComponent) Name() string         { return "api-server" }
func (c *serverComponent) Failed() <-chan error { return c.failed }

func (c *serverComponent) Init(ctx context.Context) error {
	c.failed = make(chan error, 1)
	return nil
}

func (c *serverComponent) Start(ctx context.Context) error {
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", c.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.cfg.ListenAddress, err)
	}
	c.listener = l
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	host, _, _ := net.SplitHostPort(c.cfg.ListenAddress)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	c.local = "https://" + net.JoinHostPort(host, port)
	c.advertise = c.cfg.AdvertiseURL
	if c.advertise == "" {
		c.advertise = c.local
	}
	srv, err := server.New(server.Config{
		Store:        c.store.store,
		CA:           c.ca,
		ServingCert:  c.serving,
		Name:         c.cfg.Name,
		AdvertiseURL: c.advertise,
		ServiceCIDR:  c.cfg.ServiceCIDR,
		ClusterCIDR:  c.cfg.ClusterCIDR,
		Version:      c.cfg.Version,
		Logger:       c.log.With("component", "api-server"),
	})
	if err != nil {
		l.Close()
		return err
	}
	sctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	c.done = make(chan error, 1)
	go func() {
		err := srv.Serve(sctx, l)
		if err != nil && sctx.Err() == nil {
			c.failed <- err
		}
		c.done <- err
	}()
	return nil
}

func (c *serverComponent) Stop() error {
	var err error
	c.once.Do(func() {
		if c.stop == nil {
			if c.listener != nil {
				c.listener.Close()
			}
			return
		}
		c.stop()
		err = <-c.done
	})
	return err
}

// controllersComponent runs the scheduler and controllers through the
// RunControllers hook, with a client identity minted for this control
// plane.
type controllersComponent struct {
	cfg    Config
	ca     *pki.CA
	server *serverComponent
	log    *slog.Logger
	stop   context.CancelFunc
	done   chan struct{}
	failed chan error
	once   sync.Once
}

func (c *controllersComponent) Name() string         { return "controllers" }
func (c *controllersComponent) Failed() <-chan error { return c.failed }

func (c *controllersComponent) Init(ctx context.Context) error {
	c.failed = make(chan error, 1)
	return nil
}

func (c *controllersComponent) Start(ctx context.Context) error {
	cc, err := selfClientConfig(c.cfg, c.ca, c.server.local)
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		err := c.cfg.RunControllers(rctx, cc)
		if rctx.Err() == nil {
			if err == nil {
				err = errors.New("the controllers returned without being stopped")
			}
			c.failed <- err
		}
	}()
	return nil
}

func (c *controllersComponent) Stop() error {
	c.once.Do(func() {
		if c.stop != nil {
			c.stop()
			<-c.done
		}
	})
	return nil
}
