#pragma once

namespace ft {

// -- classes ------------------------------------------------------------------

class breaker;
class deadline;
class failure_detector;
class fault_handler;
class restart_delay_state;
class restart_window;
class retry_state;

// -- structs ------------------------------------------------------------------

struct breaker_config;
struct breaker_permit;
struct breaker_stats;
struct breaker_transition;
struct child_counts;
struct child_info;
struct child_spec;
struct failure_detector_config;
struct restart_delay;
struct retry_policy;
struct shutdown_spec;
struct supervisor_event;
struct supervisor_flags;

// -- enums --------------------------------------------------------------------

enum class auto_shutdown : unsigned char;
enum class backoff_kind : unsigned char;
enum class breaker_state : unsigned char;
enum class child_state : unsigned char;
enum class child_type : unsigned char;
enum class detector_kind : unsigned char;
enum class directive : unsigned char;
enum class errc : unsigned char;
enum class event_kind : unsigned char;
enum class jitter_kind : unsigned char;
enum class restart_type : unsigned char;
enum class supervision_strategy : unsigned char;

} // namespace ft
