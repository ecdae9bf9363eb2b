package netconf

import (
	"encoding/json"
	"errors"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calico-etcd/calico/libcalico/cerrors"
)

// The CNI error codes of both plugins, so that a runtime sees the same
// code from calico and calico-ipam for the same fault:
//
//	 4  CNI_CONTAINERID missing or invalid
//	 6  the network config is not JSON (or a field has the wrong type)
//	 7  the network config is invalid: a field's value, the etcd
//	    endpoints, the node name
//	11  etcd unavailable: try again later
//	50  STATUS: cannot serve ADD
//	    a delegated plugin's own code
//	999 anything else, with the message

// ConfigError gives an error met reading the configuration (parsing it,
// or resolving the node name, datastore and logger from it) its CNI
// code: 6 when the JSON does not decode, else 7. A CNI error keeps its
// own code.
func ConfigError(err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) && te.Error() == err.Error() {
		return te
	}
	code := uint(types.ErrInvalidNetworkConfig)
	var se *json.SyntaxError
	var ue *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &ue) {
		code = types.ErrDecodingFailure
	}
	return types.NewError(code, err.Error(), "")
}

// CNIError gives an error of serving a verb its CNI code: that of a CNI
// error inside it, 11 ("try again later") when etcd does not answer,
// else 999.
func CNIError(err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	code := uint(types.ErrInternal)
	switch {
	case errors.As(err, &te):
		if te.Error() == err.Error() {
			return te
		}
		code = te.Code
	case errors.Is(err, cerrors.ErrUnavailable):
		code = types.ErrTryAgainLater
	}
	return types.NewError(code, err.Error(), "")
}
