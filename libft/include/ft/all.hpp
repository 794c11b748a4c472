#pragma once

#include "ft/child_spec.hpp"
#include "ft/config.hpp"
#include "ft/error.hpp"
#include "ft/events.hpp"
#include "ft/fault_handler.hpp"
#include "ft/fwd.hpp"
#include "ft/restart_delay.hpp"
#include "ft/restart_window.hpp"
#include "ft/supervisor.hpp"
