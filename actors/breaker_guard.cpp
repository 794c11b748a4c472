#include "ft/breaker_guard.hpp"
