package uplink

// SetAfterPut makes the uplink call fn after each confirmed upload, before the local copy is
// removed: where the crash tests kill.
func SetAfterPut(o *Options, fn func(key string)) { o.afterPut = fn }

// SetOnRetry makes the uplink call fn after each failed pass.
func SetOnRetry(o *Options, fn func(err error)) { o.onRetry = fn }
