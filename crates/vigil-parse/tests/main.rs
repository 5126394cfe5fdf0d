mod detection;
