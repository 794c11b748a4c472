#include "ft/breaker_registry.hpp"
