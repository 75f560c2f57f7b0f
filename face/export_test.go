package face

// WithBatchThreads lets the stage benchmark (package face_test) thread as
// Codes does.
var WithBatchThreads = withBatchThreads
