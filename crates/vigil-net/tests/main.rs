//! vigil-net integration tests: the shared captures against tshark's conversation tables,
//! application data from real captures, pcapng and damaged files.

mod app;
mod flows_tsv;
mod helpers;
mod pcapng;
