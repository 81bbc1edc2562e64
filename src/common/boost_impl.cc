// The one translation unit that compiles Asio, Beast, JSON and URL (separate compilation), so
// that no other file pays for their definitions. Asio.SSL: boost_ssl_impl.cc.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
