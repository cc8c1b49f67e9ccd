package backup

// Tamper lets external tests plant a damaged snapshot between save and
// verify.
func (o *ScheduledOptions) Tamper(f func(file string)) { o.tamper = f }
