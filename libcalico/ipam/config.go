package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

func decodeConfig(kv *backend.KVPair) (Config, *model.IPAMConfig, error) {
	if kv == nil {
		return DefaultConfig, nil, nil
	}
	var m model.IPAMConfig
	if err := json.Unmarshal(kv.Value, &m); err != nil {
		return Config{}, nil, fmt.Errorf("decoding IPAM config: %w", err)
	}
	return Config{StrictAffinity: m.StrictAffinity, AutoAllocateBlocks: m.AutoAllocateBlocks, MaxBlocksPerHost: m.MaxBlocksPerHost}, &m, nil
}

// GetIPAMConfig returns the cluster's IPAM configuration, or DefaultConfig
// when none is stored.
func (c *Client) GetIPAMConfig(ctx context.Context) (Config, error) {
	kv, err := c.getKV(ctx, model.IPAMConfigKey{})
	if err != nil {
		return Config{}, fmt.Errorf("reading IPAM config: %w", err)
	}
	cfg, _, err := decodeConfig(kv)
	return cfg, err
}

// SetIPAMConfig stores cfg, keeping fields it does not know (written by
// newer Calico), with Calico's rules: StrictAffinity and
// AutoAllocateBlocks cannot both be off, and MaxBlocksPerHost needs
// StrictAffinity.
func (c *Client) SetIPAMConfig(ctx context.Context, cfg Config) error {
	if !cfg.StrictAffinity && !cfg.AutoAllocateBlocks {
		return errors.New("cannot disable 'StrictAffinity' and 'AutoAllocateBlocks' at the same time")
	}
	if cfg.MaxBlocksPerHost < 0 {
		return fmt.Errorf("invalid MaxBlocksPerHost %d", cfg.MaxBlocksPerHost)
	}
	if cfg.MaxBlocksPerHost > 0 && !cfg.StrictAffinity {
		return errors.New("MaxBlocksPerHost requires StrictAffinity to be enabled")
	}
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		if _, err := c.backoff(ctx, attempt); err != nil {
			return err
		}
		kv, err := c.getKV(ctx, model.IPAMConfigKey{})
		if err != nil {
			return fmt.Errorf("reading IPAM config: %w", err)
		}
		var m model.IPAMConfig
		var rev int64
		if kv != nil {
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				return fmt.Errorf("decoding IPAM config: %w", err)
			}
			rev = kv.Revision
		}
		m.StrictAffinity, m.AutoAllocateBlocks, m.MaxBlocksPerHost = cfg.StrictAffinity, cfg.AutoAllocateBlocks, cfg.MaxBlocksPerHost
		v, err := json.Marshal(&m)
		if err != nil {
			return err
		}
		_, err = c.txn(ctx, backend.TxnOp{Action: backend.TxnPut, Key: model.IPAMConfigKey{}, Revision: rev, Value: v})
		if !isConflict(err) {
			if err != nil {
				return fmt.Errorf("writing IPAM config: %w", err)
			}
			return nil
		}
	}
	return ErrMaxAttempts
}
