package plane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Component is one long-running part of the control plane (etcd, the
// store, the API server, the controllers), after k0s's component manager.
//
// The contract:
//   - Init prepares the component (reads files, checks settings) and
//     starts nothing.
//   - Start starts it and returns once it is ready to be used by the
//     components after it. Its ctx bounds start-up only: the component keeps
//     running after Start returns, until Stop.
//   - Stop stops it and releases what it holds. Stop may be called more
//     than once, and on a component whose Start failed or never ran.
//   - Failed reports a component that stopped working on its own (its
//     channel receives at most one error and is never closed).
type Component interface {
	// Name identifies the component in logs and errors.
	Name() string
	// Init prepares the component without starting anything.
	Init(ctx context.Context) error
	// Start starts the component; ctx bounds start-up only.
	Start(ctx context.Context) error
	// Stop stops the component; it is idempotent.
	Stop() error
	// Failed delivers an error when the component stops on its own.
	Failed() <-chan error
}

// manager starts components in order and stops them in reverse.
type manager struct {
	log        *slog.Logger
	components []Component
	started    []Component
}

// start initialises every component, then starts them in order. On the
// first failure it stops those already started and returns the error.
func (m *manager) start(ctx context.Context) error {
	for _, c := range m.components {
		if err := c.Init(ctx); err != nil {
			return fmt.Errorf("init %s: %w", c.Name(), err)
		}
	}
	for _, c := range m.components {
		m.log.Info("starting component", "component", c.Name())
		if err := c.Start(ctx); err != nil {
			m.started = append(m.started, c) // Stop is safe after a failed Start
			return errors.Join(fmt.Errorf("start %s: %w", c.Name(), err), m.stop())
		}
		m.started = append(m.started, c)
	}
	return nil
}

// wait blocks until ctx ends (nil) or a component fails (its error).
func (m *manager) wait(ctx context.Context) error {
	failed := make(chan error, len(m.started))
	stop := make(chan struct{})
	defer close(stop)
	for _, c := range m.started {
		go func() {
			select {
			case err := <-c.Failed():
				failed <- fmt.Errorf("%s failed: %w", c.Name(), err)
			case <-stop:
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

// stop stops the started components in reverse order and joins their
// errors.
func (m *manager) stop() error {
	var errs []error
	for i := len(m.started) - 1; i >= 0; i-- {
		c := m.started[i]
		m.log.Info("stopping component", "component", c.Name())
		if err := c.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.Name(), err))
		}
	}
	m.started = nil
	return errors.Join(errs...)
}
