#include "ft/breaker_config.hpp"
