// The one translation unit that compiles Asio, Asio.SSL, Beast, JSON and URL
// (separate compilation), so that no other file pays for their definitions.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
